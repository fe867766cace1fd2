# expect: rego_parse_error
# opa: rejects
package corpus.syntax_error

import rego.v1

deny contains "x" if {
	input.x ==
}
