# expect: lint_regex_dialect
# opa: accepts
package corpus.regex_inline_flags

import rego.v1

deny contains "x" if {
	regex.match("(?i)prod", input.stage.name)
}
