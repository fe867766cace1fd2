# expect: lint_forbidden_builtin
# opa: accepts
package corpus.with_mock_target

import rego.v1

deny contains "x" if {
	input.x with http.send as count
}
