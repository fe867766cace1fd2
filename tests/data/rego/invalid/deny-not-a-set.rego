# expect: lint_contract
# opa: accepts
package corpus.deny_not_a_set

import rego.v1

deny := {"x"} if input.x
