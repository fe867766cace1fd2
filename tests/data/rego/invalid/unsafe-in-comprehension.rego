# expect: rego_unsafe_var_error
# opa: rejects
package corpus.unsafe_in_comprehension

import rego.v1

deny contains msg if {
	msgs := [x | some x in input.xs; y > 1]
	some msg in msgs
}
