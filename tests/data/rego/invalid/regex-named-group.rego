# expect: lint_regex_dialect
# opa: accepts
package corpus.regex_named_group

import rego.v1

deny contains "x" if {
	regex.match("(?P<env>prod)", input.stage.name)
}
