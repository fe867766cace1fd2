# expect: lint_forbidden_builtin
# opa: accepts
package corpus.net_lookup

import rego.v1

deny contains "x" if {
	count(net.lookup_ip_addr("example.com")) > 0
}
