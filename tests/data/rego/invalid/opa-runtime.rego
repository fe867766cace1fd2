# expect: lint_forbidden_builtin
# opa: accepts
package corpus.opa_runtime

import rego.v1

deny contains msg if {
	msg := json.marshal(opa.runtime().env)
}
