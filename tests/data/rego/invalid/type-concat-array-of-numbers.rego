# expect: rego_type_error
# opa: rejects
package corpus.type_concat_array_of_numbers

import rego.v1

deny contains msg if {
	msg := concat(",", [1, 2])
}
