# expect: rego_type_error
# opa: rejects
package corpus.type_rule_value

import rego.v1

_name := "prod"

deny contains "x" if {
	_name * 2 > 1
}
