# expect: rego_unsafe_var_error
# opa: rejects
package corpus.unsafe_wildcard_argument

import rego.v1

deny contains "x" if {
	count(_) > 1
}
