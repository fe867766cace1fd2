# expect: rego_type_error
# opa: rejects
package corpus.type_abs_string

import rego.v1

deny contains "x" if {
	abs("a") > 1
}
