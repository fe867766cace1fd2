# expect: rego_unsafe_var_error
# opa: rejects
package corpus.unsafe_head

import rego.v1

deny contains msg if {
	input.stage.health == "Unhealthy"
}
