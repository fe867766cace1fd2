# expect: lint_v0_syntax
# opa: rejects
package corpus.v0_partial_set

import rego.v1

deny[msg] {
	msg := "x"
}
