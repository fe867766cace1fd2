package corpus.set_function_empty

import rego.v1

_none := set()

deny contains x if {
	some x in _none
}
