# expect: rego_compile_error
# opa: rejects
package corpus.declared_var_unused

import rego.v1

deny contains "x" if {
	some i
	input.xs[2] == 2
}
