# expect: reserved_package
# opa: accepts
package policy_server.entry.e1

import rego.v1

deny contains "x" if input.x
