# expect: lint_unknown_reference
# opa: accepts
package corpus.read_unknown_data

import rego.v1

deny contains "x" if {
	data.inventory.frozen[input.stage.name]
}
