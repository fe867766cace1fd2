# expect: lint_forbidden_builtin
# opa: accepts
package corpus.print

import rego.v1

deny contains "x" if {
	print(input)
	input.x
}
