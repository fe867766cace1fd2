# expect: lint_no_deny_rule
# opa: accepts
package corpus.no_deny_rule

import rego.v1

warn contains "x" if input.x
