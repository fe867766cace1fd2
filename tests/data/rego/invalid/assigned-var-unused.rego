# expect: rego_compile_error
# opa: rejects
package corpus.assigned_var_unused

import rego.v1

deny contains "x" if {
	input.x
	unused := 1
}
