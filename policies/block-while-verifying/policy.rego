# METADATA
# title: Block while verifying
# description: >-
#   A queued Promotion waits while the verification of the Stage's last Succeeded Promotion is
#   pending or running, and until it has started where Kargo will start it (Kargo #2128, #7032).
package policies.block_while_verifying

import rego.v1

deny contains d if some d in denials(input)

denials(inp) := (_in_progress(inp) | _not_started(inp)) | _reused(inp)

# Only Stages with spec.verification that have a Succeeded Promotion to verify.
_applies(inp) if {
	inp.stage.has_verification == true
	inp.last_succeeded != null
}

# The asking Promotion runs its steps (Kargo's http step): it is the Stage's current Promotion.
_inside(inp) if inp.promotion.phase == "Running"

_inside(inp) if {
	inp.stage.current_promotion != null
	inp.stage.current_promotion == inp.promotion.name
}

# Kargo starts a (re)verification only when no Promotion is current, its last Promotion succeeded (else
# it marks health Unknown and never verifies) and health is Healthy (a Stage still waiting for its
# first health check after the Promotion will get one). A hold that needs a verification to start is
# only ever placed where all of that holds, so it can always clear.
_kargo_would_verify(inp) if {
	_applies(inp)
	inp.stage.current_promotion == null
	not _inside(inp)
	_last_promotion_succeeded(inp)
	_holds_for_health(inp)
}

_last_promotion_succeeded(inp) if object.get(inp.stage, "last_promotion_phase", null) == "Succeeded"

# Stage objects without status.lastPromotion.status: the last Promotion is the last Succeeded one.
_last_promotion_succeeded(inp) if {
	object.get(inp.stage, "last_promotion_phase", null) == null
	inp.stage.last_promotion == inp.last_succeeded
}

_holds_for_health(inp) if inp.stage.health != "Unhealthy"

_holds_for_health(inp) if object.get(inp.parameters, "hold_unhealthy", false) == true

_in_progress(inp) := {{
	"code": "verification_in_progress",
	"message": sprintf("verification %s of Promotion %s is %s", [_label(run), inp.last_succeeded, _state_text(run)]),
}} if {
	_applies(inp)
	run := inp.verification
	run != null
	_still_verifying(inp, run)
} else := set()

_still_verifying(inp, run) if {
	run.effective_phase in {"", "Pending", "Running"}
	_will_progress(inp, run)
}

# A stopped run that has ended: only Kargo's record says whether a user aborted it (then it failed).
# Kargo writes that record only while no Promotion is current.
_still_verifying(inp, run) if {
	object.get(run, "awaiting_kargo", false) == true
	inp.stage.current_promotion == null
	not _inside(inp)
}

# An AnalysisRun progresses on its own; Kargo's record alone (no run recorded) only changes while
# no Promotion is current.
_will_progress(_, run) if object.get(run, "source", "analysis-run") == "analysis-run"

_will_progress(inp, run) if {
	object.get(run, "source", "analysis-run") == "kargo"
	inp.stage.current_promotion == null
	not _inside(inp)
}

_state_text(run) := "stopped, waiting for Kargo to record the result" if object.get(run, "awaiting_kargo", false) == true

_state_text(run) := "not yet reconciled" if {
	object.get(run, "awaiting_kargo", false) != true
	run.effective_phase == ""
}

_state_text(run) := run.effective_phase if {
	object.get(run, "awaiting_kargo", false) != true
	run.effective_phase != ""
}

_label(run) := sprintf("run %s", [run.name]) if run.name != null

_label(run) := "(Kargo's record, no AnalysisRun)" if run.name == null

# No verification of L yet, where Kargo is about to start one.
_not_started(inp) := {{
	"code": "verification_not_started",
	"message": sprintf("verification of Promotion %s has not started yet; Kargo starts it when Stage %s is Healthy (health: %v)", [inp.last_succeeded, inp.stage.name, inp.stage.health]),
}} if {
	_kargo_would_verify(inp)
	inp.verification == null
	not _kargo_reused(inp)
} else := set()

# Kargo verified L's Freight with a run of an earlier Promotion of the same Freight (Kargo #6372): no
# evidence about L's deployment. Kargo requests a reverify itself after re-promoting verified Freight,
# and a person can request one; it starts under the same conditions as a first verification.
_reused(inp) := {{
	"code": "verification_reused",
	"message": sprintf("Kargo reused verification run %s, created before Promotion %s finished (Kargo #6372), so it says nothing of this deployment; a reverify of Stage %s clears this (Kargo requests one after re-promoting verified Freight; else reverify in the Kargo UI or CLI)", [inp.kargo_verification.analysis_run, inp.last_succeeded, inp.stage.name]),
}} if {
	_kargo_would_verify(inp)
	inp.verification == null
	_kargo_reused(inp)
} else := set()

_kargo_reused(inp) if {
	record := object.get(inp, "kargo_verification", null)
	record != null
	record.reused == true
}
