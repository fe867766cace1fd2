package policies.cancel_queue_on_failure_test

import rego.v1

import data.policies.cancel_queue_on_failure as policy

_promotion(name, created) := {"name": name, "phase": "Pending", "terminal": false, "created_at_ns": created}

_doc(p, run) := {
	"namespace": "kargo-demo",
	"now_ns": 5000,
	"promotion": p,
	"stage": {"name": "prod", "has_verification": true, "health": "Healthy"},
	"last_succeeded": "prod.l",
	"queue": ["prod.a", "prod.b", "prod.c"],
	"promotions": {
		"prod.a": _promotion("prod.a", 100),
		"prod.b": _promotion("prod.b", 1000),
		"prod.c": _promotion("prod.c", 2001),
	},
	"verification": run,
	"parameters": {},
}

_run(phase, completed) := {
	"name": "prod.run", "phase": phase, "effective_phase": phase,
	"terminated": false, "completed_at_ns": completed,
}

_codes(doc) := {d.code | some d in policy.denials(doc)}

_aborted(doc) := {a.promotion | some a in policy.aborts(doc)}

test_failed_run_denies_and_aborts_what_was_queued_before_it_ended if {
	doc := _doc(_promotion("prod.a", 100), _run("Failed", 2000))
	_codes(doc) == {"verification_failed"}
	_aborted(doc) == {"prod.a", "prod.b"}
}

test_promotion_created_at_the_failure_instant_is_aborted if {
	doc := _doc(_promotion("prod.b", 1000), _run("Error", 1000))
	_aborted(doc) == {"prod.a", "prod.b"}
	_codes(doc) == {"verification_failed"}
}

test_later_promotion_is_judged_normally_but_still_reports_the_aborts if {
	doc := _doc(_promotion("prod.c", 2001), _run("Failed", 2000))
	count(_codes(doc)) == 0
	_aborted(doc) == {"prod.a", "prod.b"}
}

test_run_stopped_by_a_user_counts_as_failed if {
	run := {"name": "prod.run", "phase": "Successful", "effective_phase": "Failed", "terminated": true, "completed_at_ns": 2000}
	_aborted(_doc(_promotion("prod.a", 100), run)) == {"prod.a", "prod.b"}
	some a in policy.aborts(_doc(_promotion("prod.a", 100), run))
	contains(a.reason, "stopped by a user")
}

test_stopped_run_without_completion_cuts_at_now if {
	run := {"name": "prod.run", "phase": "Running", "effective_phase": "Failed", "terminated": true, "completed_at_ns": null}
	_aborted(_doc(_promotion("prod.a", 100), run)) == {"prod.a", "prod.b", "prod.c"}
}

test_inconclusive_holds_and_aborts_nothing if {
	doc := _doc(_promotion("prod.c", 2001), _run("Inconclusive", 2000))
	_codes(doc) == {"verification_inconclusive"}
	count(_aborted(doc)) == 0
}

test_successful_and_running_runs_do_nothing if {
	count(_codes(_doc(_promotion("prod.a", 100), _run("Successful", 2000)))) == 0
	count(_aborted(_doc(_promotion("prod.a", 100), _run("Running", null)))) == 0
}

test_no_run_does_nothing if {
	count(_aborted(_doc(_promotion("prod.a", 100), null))) == 0
	count(_codes(_doc(_promotion("prod.a", 100), null))) == 0
}

test_failure_phases_parameter if {
	doc := object.union(_doc(_promotion("prod.a", 100), _run("Error", 2000)), {"parameters": {"failure_phases": ["Failed"]}})
	count(_aborted(doc)) == 0
}
