# expect: rego_type_error
# opa: rejects
package corpus.undefined_function

import rego.v1

deny contains msg if {
	msg := nosuch(input.x)
}
