# METADATA
# title: Cancel the queue on failed verification
# description: >-
#   When the verification of the Stage's last Succeeded Promotion fails (Failed, Error, Kargo's own
#   abort, or an Error Kargo recorded without any AnalysisRun), every Promotion queued at or before
#   the failure is denied and aborted. An Inconclusive verification holds the queue for a human, who
#   can reverify or accept it with the policy-server.dev/accept-verification annotation on the Stage.
package policies.cancel_queue_on_failure

import rego.v1

deny contains d if some d in denials(input)

warn contains w if some w in warnings(input)

abort contains a if some a in aborts(input)

denials(inp) := _failed_denial(inp) | _inconclusive(inp)

warnings(inp) := _accepted(inp)

aborts(inp) := {a |
	run := inp.verification
	some name in doomed(inp)
	a := {
		"promotion": name,
		"reason": sprintf("verification %s %s before this Promotion could start", [_label(run), _what(run)]),
	}
}

_failed(inp) if {
	inp.verification != null
	inp.verification.effective_phase in {p | some p in object.get(inp.parameters, "failure_phases", ["Failed", "Error"])}
}

# Promotions created at or before the verification ended; with no recorded end, every queued one (a Promotion
# created later is a state change, answered again). Not the time of the question: verdicts that do not read
# the time hold until the state changes, and can be computed ahead of the question.
_queued_before_end(_, run) if run.completed_at_ns == null

_queued_before_end(p, run) if p.created_at_ns <= run.completed_at_ns

doomed(inp) := {name |
	_failed(inp)
	some name in inp.queue
	_queued_before_end(inp.promotions[name], inp.verification)
}

_label(run) := sprintf("run %s", [run.name]) if run.name != null

_label(run) := "(Kargo's record, no AnalysisRun)" if run.name == null

_what(run) := "was aborted by a user in Kargo" if object.get(run, "aborted_by_user", false) == true

_what(run) := sprintf("ended %s (%s)", [run.effective_phase, run.message]) if {
	object.get(run, "aborted_by_user", false) != true
	object.get(run, "source", "analysis-run") == "kargo"
	run.message != null
}

_what(run) := sprintf("ended %s", [run.effective_phase]) if {
	object.get(run, "aborted_by_user", false) != true
	not _kargo_message(run)
}

_kargo_message(run) if {
	object.get(run, "source", "analysis-run") == "kargo"
	run.message != null
}

_failed_denial(inp) := {{
	"code": "verification_failed",
	"message": sprintf("verification %s of Promotion %s %s; Promotions queued before it ended are cancelled", [_label(inp.verification), inp.last_succeeded, _what(inp.verification)]),
}} if {
	inp.promotion.name in doomed(inp)
} else := set()

_is_inconclusive(inp) if {
	inp.verification.effective_phase == "Inconclusive"
	object.get(inp.parameters, "hold_on_inconclusive", true) == true
}

# A person accepted this verification's result: the annotation names its run (or Kargo's record id).
_accepted_by_annotation(inp) if {
	accepted := object.get(inp.stage, "accepted_verification", null)
	accepted != null
	accepted in {inp.verification.name, object.get(inp.verification, "record_id", null)}
}

_inconclusive(inp) := {{
	"code": "verification_inconclusive",
	"message": sprintf("verification %s of Promotion %s is Inconclusive: the queue waits for a person to reverify Stage %s, or to accept the result with `kubectl annotate stage %s -n %s policy-server.dev/accept-verification=%s`", [_label(inp.verification), inp.last_succeeded, inp.stage.name, inp.stage.name, inp.namespace, _accept_value(inp.verification)]),
}} if {
	_is_inconclusive(inp)
	not _accepted_by_annotation(inp)
} else := set()

_accept_value(run) := run.name if run.name != null

_accept_value(run) := object.get(run, "record_id", "") if run.name == null

_accepted(inp) := {{
	"code": "inconclusive_accepted",
	"message": sprintf("Inconclusive verification %s of Promotion %s accepted by the policy-server.dev/accept-verification annotation on Stage %s: the queue moves on", [_label(inp.verification), inp.last_succeeded, inp.stage.name]),
}} if {
	_is_inconclusive(inp)
	_accepted_by_annotation(inp)
} else := set()
