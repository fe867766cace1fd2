# expect: rego_type_error
# opa: rejects
package corpus.undefined_data_function

import rego.v1

deny contains msg if {
	msg := data.lib.helpers.format(input.x)
}
