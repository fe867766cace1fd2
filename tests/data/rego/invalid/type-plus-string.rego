# expect: rego_type_error
# opa: rejects
package corpus.type_plus_string

import rego.v1

deny contains "x" if {
	input.x + "a" > 1
}
