package corpus.partial_object

import rego.v1

_by_name[name] := p.phase if {
	some name, p in input.promotions
}

deny contains "x" if _by_name["prod.a"] == "Running"
