# expect: lint_reserved_reference
# opa: accepts
package corpus.read_generated_wrapper

import rego.v1

deny contains "x" if {
	count(data.policy_server.entry.e0.result.deny) > 0
}
