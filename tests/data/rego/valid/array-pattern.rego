package corpus.array_pattern

import rego.v1

deny contains msg if {
	[first, _] := split(input.promotion.name, ".")
	msg := sprintf("stage %s", [first])
	first != input.stage.name
}
