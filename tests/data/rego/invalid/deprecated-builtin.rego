# expect: rego_type_error
# opa: rejects
package corpus.deprecated_builtin

import rego.v1

deny contains "x" if {
	any([input.a, input.b])
}
