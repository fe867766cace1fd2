# expect: rego_type_error
# opa: rejects
package corpus.arity_user_function

import rego.v1

_f(x) := x

deny contains msg if {
	msg := _f(1, 2, 3)
}
