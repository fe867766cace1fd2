# expect: rego_type_error
# opa: rejects
package corpus.type_count_number

import rego.v1

deny contains "too many" if {
	count(5) > 1
}
