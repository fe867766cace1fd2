# expect: lint_v0_syntax
# opa: rejects
package corpus.v0_body

import rego.v1

deny contains "x" if _held

_held {
	true
}
