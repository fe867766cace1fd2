package corpus.nested_comprehension_closure

import rego.v1

deny contains msg if {
	limit := object.get(input.parameters, "limit", 3)
	late := [name | some name in input.queue; count([x | some x in input.queue; x < name]) >= limit]
	count(late) > 0
	msg := sprintf("%d queued past the limit", [count(late)])
}
