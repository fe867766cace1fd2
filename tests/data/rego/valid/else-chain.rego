package corpus.else_chain

import rego.v1

_phase(run) := "not reconciled" if {
	run.phase == ""
} else := run.phase if {
	run.phase != null
} else := "unknown"

deny contains msg if {
	msg := sprintf("run is %s", [_phase(input.verification)])
	input.verification.phase != "Successful"
}
