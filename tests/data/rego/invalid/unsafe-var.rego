# expect: rego_unsafe_var_error
# opa: rejects
package corpus.unsafe_var

import rego.v1

deny contains msg if {
	input.x
	msg := sprintf("%v", [y])
}
