package policies.block_while_verifying_test

import rego.v1

import data.policies.block_while_verifying as policy

_doc(run, health) := {
	"namespace": "kargo-demo",
	"promotion": {"name": "prod.b", "phase": "Pending", "terminal": false},
	"stage": {"name": "prod", "has_verification": true, "health": health},
	"last_succeeded": "prod.a",
	"verification": run,
	"parameters": {},
}

_run(phase) := {"name": "prod.run", "phase": phase, "effective_phase": phase, "terminated": false}

_codes(doc) := {d.code | some d in policy.denials(doc)}

test_running_verification_blocks if {
	_codes(_doc(_run("Running"), "Healthy")) == {"verification_in_progress"}
}

test_pending_and_unreconciled_runs_block if {
	_codes(_doc(_run("Pending"), "Healthy")) == {"verification_in_progress"}
	_codes(_doc(_run(""), "Healthy")) == {"verification_in_progress"}
}

test_running_verification_blocks_even_when_unhealthy if {
	_codes(_doc(_run("Running"), "Unhealthy")) == {"verification_in_progress"}
}

test_successful_verification_passes if {
	count(_codes(_doc(_run("Successful"), "Healthy"))) == 0
}

test_failed_verification_is_left_to_cancel_queue_on_failure if {
	count(_codes(_doc(_run("Failed"), "Healthy"))) == 0
}

test_verification_not_started_blocks if {
	_codes(_doc(null, "Progressing")) == {"verification_not_started"}
	_codes(_doc(null, null)) == {"verification_not_started"}
}

test_unhealthy_stage_without_a_run_passes if {
	count(_codes(_doc(null, "Unhealthy"))) == 0
}

test_hold_unhealthy_parameter_holds_anyway if {
	doc := object.union(_doc(null, "Unhealthy"), {"parameters": {"hold_unhealthy": true}})
	_codes(doc) == {"verification_not_started"}
}

test_stage_without_verification_passes if {
	doc := object.union(_doc(null, "Healthy"), {"stage": {"name": "prod", "has_verification": false, "health": "Healthy"}})
	count(_codes(doc)) == 0
}

test_nothing_succeeded_yet_passes if {
	doc := object.union(_doc(null, "Healthy"), {"last_succeeded": null})
	count(_codes(doc)) == 0
}
