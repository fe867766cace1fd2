# expect: rego_unsafe_var_error
# opa: rejects
package corpus.unsafe_negation

import rego.v1

deny contains "held" if {
	not input.queue[i]
}
