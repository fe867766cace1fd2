package corpus.function_returns_set

import rego.v1

_doomed(inp) := {name | some name in inp.queue; startswith(name, "prod")}

deny contains msg if {
	some name in _doomed(input)
	msg := name
}
