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

_run(phase) := _run_at(phase, 2000)

_run_at(phase, completed) := {
	"name": "prod.run", "phase": phase, "effective_phase": phase, "terminated": false,
	"aborted_by_user": false, "source": "analysis-run", "message": null, "record_id": "rec-1",
	"completed_at_ns": completed,
}

# object.union is shallow in regopy: merge the Stage by hand.
_with_stage(doc, patch) := object.union(doc, {"stage": object.union(doc.stage, patch)})

_codes(doc) := {d.code | some d in policy.denials(doc)}

_aborted(doc) := {a.promotion | some a in policy.aborts(doc)}

test_failed_run_denies_and_aborts_what_was_queued_before_it_ended if {
	doc := _doc(_promotion("prod.a", 100), _run("Failed"))
	_codes(doc) == {"verification_failed"}
	_aborted(doc) == {"prod.a", "prod.b"}
}

test_promotion_created_at_the_failure_instant_is_aborted if {
	doc := _doc(_promotion("prod.b", 1000), _run_at("Error", 1000))
	_aborted(doc) == {"prod.a", "prod.b"}
	_codes(doc) == {"verification_failed"}
}

test_later_promotion_is_judged_normally_but_still_reports_the_aborts if {
	doc := _doc(_promotion("prod.c", 2001), _run("Failed"))
	count(_codes(doc)) == 0
	_aborted(doc) == {"prod.a", "prod.b"}
}

test_kargos_own_abort_counts_as_failed if {
	run := object.union(_run("Failed"), {"phase": "Successful", "terminated": true, "aborted_by_user": true})
	_aborted(_doc(_promotion("prod.a", 100), run)) == {"prod.a", "prod.b"}
	some a in policy.aborts(_doc(_promotion("prod.a", 100), run))
	contains(a.reason, "aborted by a user")
}

# Anyone else stopping the run: it ends with whatever phase Argo Rollouts gives it, and Kargo records that.
test_a_run_stopped_otherwise_counts_as_its_phase if {
	run := object.union(_run("Successful"), {"terminated": true})
	count(_aborted(_doc(_promotion("prod.a", 100), run))) == 0
}

# Rollouts integration disabled, a template error: Kargo records Error and starts no run.
test_an_error_kargo_recorded_without_a_run_is_a_failed_verification if {
	run := object.union(_run("Error"), {"name": null, "source": "kargo", "message": "Rollouts integration is disabled"})
	doc := _doc(_promotion("prod.a", 100), run)
	_aborted(doc) == {"prod.a", "prod.b"}
	some d in policy.denials(doc)
	contains(d.message, "Rollouts integration is disabled")
}

test_failure_without_completion_takes_every_queued_promotion if {
	run := _run("Failed")
	_aborted(_doc(_promotion("prod.a", 100), object.union(run, {"completed_at_ns": null}))) == {"prod.a", "prod.b", "prod.c"}
}

test_inconclusive_holds_and_aborts_nothing if {
	doc := _doc(_promotion("prod.c", 2001), _run("Inconclusive"))
	_codes(doc) == {"verification_inconclusive"}
	count(_aborted(doc)) == 0
}

test_successful_and_running_runs_do_nothing if {
	count(_codes(_doc(_promotion("prod.a", 100), _run("Successful")))) == 0
	count(_aborted(_doc(_promotion("prod.a", 100), _run_at("Running", null)))) == 0
}

test_no_run_does_nothing if {
	count(_aborted(_doc(_promotion("prod.a", 100), null))) == 0
	count(_codes(_doc(_promotion("prod.a", 100), null))) == 0
}

test_failure_phases_parameter if {
	doc := object.union(_doc(_promotion("prod.a", 100), _run("Error")), {"parameters": {"failure_phases": ["Failed"]}})
	count(_aborted(doc)) == 0
}

_warnings(doc) := {w.code | some w in policy.warnings(doc)}

test_accepting_an_inconclusive_verification_lets_the_queue_move_on_and_says_so if {
	doc := _doc(_promotion("prod.c", 2001), _run("Inconclusive"))
	accepted := _with_stage(doc, {"accepted_verification": "prod.run"})
	count(_codes(accepted)) == 0
	_warnings(accepted) == {"inconclusive_accepted"}
	by_record := _with_stage(doc, {"accepted_verification": "rec-1"})
	count(_codes(by_record)) == 0
}

test_accepting_another_run_changes_nothing if {
	doc := _with_stage(_doc(_promotion("prod.c", 2001), _run("Inconclusive")), {"accepted_verification": "prod.older"})
	_codes(doc) == {"verification_inconclusive"}
	count(_warnings(doc)) == 0
}

test_acceptance_does_not_apply_to_a_failed_verification if {
	doc := _with_stage(_doc(_promotion("prod.a", 100), _run("Failed")), {"accepted_verification": "prod.run"})
	_aborted(doc) == {"prod.a", "prod.b"}
}
