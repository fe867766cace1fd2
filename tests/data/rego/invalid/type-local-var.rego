# expect: rego_type_error
# opa: rejects
package corpus.type_local_var

import rego.v1

deny contains "x" if {
	name := "prod"
	name + 1 > 2
}
