# expect: rego_parse_error
# opa: rejects
package corpus.unterminated_string

import rego.v1

deny contains "x if {
	input.x
}
