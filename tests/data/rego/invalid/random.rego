# expect: lint_forbidden_builtin
# opa: accepts
package corpus.random

import rego.v1

deny contains "x" if {
	rand.intn("seed", 10) == 3
}
