# expect: rego_compile_error
# opa: rejects
package corpus.shadow_input

import rego.v1

deny contains "x" if {
	input := {"a": 1}
	input.a == 1
}
