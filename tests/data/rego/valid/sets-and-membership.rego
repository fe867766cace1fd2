package corpus.sets_and_membership

import rego.v1

_terminal := {"Succeeded", "Failed", "Errored", "Aborted"}

deny contains "x" if {
	phases := {p.phase | some p in input.promotions}
	count(phases - _terminal) > 1
	"Running" in phases
}
