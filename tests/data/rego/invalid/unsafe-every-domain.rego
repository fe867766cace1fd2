# expect: rego_unsafe_var_error
# opa: rejects
package corpus.unsafe_every_domain

import rego.v1

deny contains "x" if {
	every p in ps {
		p.phase == "Running"
	}
}
