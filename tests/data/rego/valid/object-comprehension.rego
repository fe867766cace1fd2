package corpus.object_comprehension

import rego.v1

_phases := {name: p.phase | some name, p in input.promotions}

deny contains "running" if {
	some phase in _phases
	phase == "Running"
}
