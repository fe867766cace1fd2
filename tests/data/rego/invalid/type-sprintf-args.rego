# expect: rego_type_error
# opa: rejects
package corpus.type_sprintf_args

import rego.v1

deny contains msg if {
	msg := sprintf("%v", "x")
}
