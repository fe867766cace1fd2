# METADATA
# title: Block while verifying
# description: >-
#   A queued Promotion waits while the verification of the Stage's last Succeeded Promotion is
#   pending or running, and until it has started (Kargo #2128, #7032).
package policies.block_while_verifying

import rego.v1

deny contains d if some d in denials(input)

denials(inp) := _in_progress(inp) | _not_started(inp)

# Only Stages with spec.verification that have a Succeeded Promotion to verify.
_applies(inp) if {
	inp.stage.has_verification == true
	inp.last_succeeded != null
}

_in_progress(inp) := {{
	"code": "verification_in_progress",
	"message": sprintf("verification run %s of Promotion %s is %s", [run.name, inp.last_succeeded, _phase_text(run.effective_phase)]),
}} if {
	_applies(inp)
	run := inp.verification
	run != null
	run.effective_phase in {"", "Pending", "Running"}
} else := set()

_phase_text(phase) := "not yet reconciled" if phase == ""

_phase_text(phase) := phase if phase != ""

# No run for the last Succeeded Promotion yet. Kargo never starts verification on an Unhealthy
# Stage, so holding there would deadlock the Stage (unless the hold_unhealthy parameter asks to).
_not_started(inp) := {{
	"code": "verification_not_started",
	"message": sprintf("verification of Promotion %s has not started yet (Stage health: %v)", [inp.last_succeeded, inp.stage.health]),
}} if {
	_applies(inp)
	inp.verification == null
	_holds_for_health(inp)
} else := set()

_holds_for_health(inp) if inp.stage.health != "Unhealthy"

_holds_for_health(inp) if object.get(inp.parameters, "hold_unhealthy", false) == true
