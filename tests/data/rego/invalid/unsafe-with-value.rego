# expect: rego_unsafe_var_error
# opa: rejects
package corpus.unsafe_with_value

import rego.v1

deny contains "x" if {
	_held with input.x as y
}

_held if input.x
