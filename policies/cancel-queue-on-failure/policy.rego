# METADATA
# title: Cancel the queue on failed verification
# description: >-
#   When the verification of the Stage's last Succeeded Promotion fails (Failed, Error, or stopped
#   by a user), every Promotion queued at or before the failure is denied and aborted. An
#   Inconclusive verification holds the queue for a human and aborts nothing.
package policies.cancel_queue_on_failure

import rego.v1

deny contains d if some d in denials(input)

abort contains a if some a in aborts(input)

denials(inp) := _failed_denial(inp) | _inconclusive(inp)

aborts(inp) := {a |
	run := inp.verification
	some name in doomed(inp)
	a := {
		"promotion": name,
		"reason": sprintf("verification run %s %s before this Promotion could start", [run.name, _what(run)]),
	}
}

_failed(inp) if {
	inp.verification != null
	inp.verification.effective_phase in {p | some p in object.get(inp.parameters, "failure_phases", ["Failed", "Error"])}
}

# Promotions created at or before the run ended; a run stopped but not yet completed cuts at now.
_cutoff(run, _) := run.completed_at_ns if run.completed_at_ns != null

_cutoff(run, now) := now if run.completed_at_ns == null

doomed(inp) := {name |
	_failed(inp)
	cutoff := _cutoff(inp.verification, inp.now_ns)
	some name in inp.queue
	inp.promotions[name].created_at_ns <= cutoff
}

_what(run) := "was stopped by a user" if run.terminated == true

_what(run) := sprintf("ended %s", [run.phase]) if run.terminated != true

_failed_denial(inp) := {{
	"code": "verification_failed",
	"message": sprintf("verification run %s of Promotion %s %s; Promotions queued before it ended are cancelled", [inp.verification.name, inp.last_succeeded, _what(inp.verification)]),
}} if {
	inp.promotion.name in doomed(inp)
} else := set()

_inconclusive(inp) := {{
	"code": "verification_inconclusive",
	"message": sprintf("verification run %s of Promotion %s is Inconclusive: the queue waits for a human to reverify or abort", [inp.verification.name, inp.last_succeeded]),
}} if {
	inp.verification.effective_phase == "Inconclusive"
	object.get(inp.parameters, "hold_on_inconclusive", true) == true
} else := set()
