# expect: rego_type_error
# opa: rejects
package corpus.arity_builtin

import rego.v1

deny contains msg if {
	msg := upper(input.a, input.b, input.c)
}
