# expect: reserved_package
# opa: accepts
package system

import rego.v1

deny contains "x" if input.x
