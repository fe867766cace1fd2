package policies.block_while_verifying_test

import rego.v1

import data.policies.block_while_verifying as policy

# L (prod.a) Succeeded and is the Stage's last Promotion; P (prod.b) is Pending; nothing is current.
_doc(run, health) := {
	"namespace": "kargo-demo",
	"promotion": {"name": "prod.b", "phase": "Pending", "terminal": false},
	"stage": {
		"name": "prod", "has_verification": true, "health": health,
		"current_promotion": null, "last_promotion": "prod.a", "last_promotion_phase": "Succeeded",
	},
	"last_succeeded": "prod.a",
	"verification": run,
	"kargo_verification": null,
	"parameters": {},
}

_with(doc, patch) := object.union(doc, patch)

# object.union is shallow in regopy: merge the Stage by hand.
_with_stage(doc, patch) := object.union(doc, {"stage": object.union(doc.stage, patch)})

_run(phase) := {
	"name": "prod.run", "phase": phase, "effective_phase": phase, "terminated": false,
	"aborted_by_user": false, "awaiting_kargo": false, "source": "analysis-run",
}

_codes(doc) := {d.code | some d in policy.denials(doc)}

# The asking Promotion runs its steps: Kargo's http step inside it.
_inside(doc) := _with(_with_stage(doc, {"current_promotion": "prod.b"}), {
	"promotion": {"name": "prod.b", "phase": "Running", "terminal": false},
})

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

# The run ends on its own, whatever the Promotion does: waiting inside the step clears.
test_running_verification_also_holds_inside_the_promotion if {
	_codes(_inside(_doc(_run("Running"), "Unknown"))) == {"verification_in_progress"}
}

test_successful_verification_passes if {
	count(_codes(_doc(_run("Successful"), "Healthy"))) == 0
}

test_failed_verification_is_left_to_cancel_queue_on_failure if {
	count(_codes(_doc(_run("Failed"), "Healthy"))) == 0
}

test_stopped_run_waits_for_kargos_record_where_kargo_writes_it if {
	stopped := object.union(_run("Successful"), {"terminated": true, "awaiting_kargo": true})
	_codes(_doc(stopped, "Healthy")) == {"verification_in_progress"}
	count(_codes(_inside(_doc(stopped, "Healthy")))) == 0
}

test_kargos_record_alone_holds_only_where_kargo_updates_it if {
	record := object.union(_run("Running"), {"name": null, "source": "kargo"})
	_codes(_doc(record, "Healthy")) == {"verification_in_progress"}
	count(_codes(_inside(_doc(record, "Healthy")))) == 0
}

test_verification_not_started_blocks_where_kargo_will_start_it if {
	_codes(_doc(null, "Healthy")) == {"verification_not_started"}
	# right after the Promotion, before the first health check
	_codes(_doc(null, "Unknown")) == {"verification_not_started"}
	_codes(_doc(null, null)) == {"verification_not_started"}
}

test_not_started_never_denies_the_current_promotion if {
	count(_codes(_inside(_doc(null, "Healthy")))) == 0
}

test_not_started_does_not_hold_while_another_promotion_is_current if {
	doc := _with_stage(_doc(null, "Healthy"), {"current_promotion": "prod.c"})
	count(_codes(doc)) == 0
}

# Kargo marks health Unknown for good after a Promotion that did not succeed, and never verifies.
test_not_started_does_not_hold_after_a_failed_promotion if {
	doc := _with_stage(_doc(null, "Unknown"), {"last_promotion": "prod.x", "last_promotion_phase": "Failed"})
	count(_codes(doc)) == 0
}

test_unhealthy_stage_without_a_run_passes if {
	count(_codes(_doc(null, "Unhealthy"))) == 0
}

test_hold_unhealthy_parameter_holds_anyway if {
	doc := _with(_doc(null, "Unhealthy"), {"parameters": {"hold_unhealthy": true}})
	_codes(doc) == {"verification_not_started"}
}

test_reused_run_holds_until_a_reverify if {
	doc := _with(_doc(null, "Healthy"), {"kargo_verification": {"analysis_run": "prod.old", "phase": "Successful", "reused": true}})
	_codes(doc) == {"verification_reused"}
	some d in policy.denials(doc)
	contains(d.message, "reverify")
}

test_reused_run_never_holds_where_a_reverify_cannot_start if {
	doc := _with(_doc(null, "Healthy"), {"kargo_verification": {"analysis_run": "prod.old", "phase": "Successful", "reused": true}})
	count(_codes(_inside(doc))) == 0
	count(_codes(_with_stage(doc, {"health": "Unhealthy"}))) == 0
	count(_codes(_with_stage(doc, {"last_promotion": "prod.x", "last_promotion_phase": "Errored"}))) == 0
}

test_stage_without_verification_passes if {
	doc := _with_stage(_doc(null, "Healthy"), {"has_verification": false})
	count(_codes(doc)) == 0
}

test_nothing_succeeded_yet_passes if {
	doc := _with(_doc(null, "Healthy"), {"last_succeeded": null})
	count(_codes(doc)) == 0
}
