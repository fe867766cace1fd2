# expect: lint_forbidden_builtin
# opa: accepts
package corpus.clock

import rego.v1

deny contains "frozen" if {
	time.now_ns() > 0
}
