# expect: rego_type_error
# opa: rejects
package corpus.multiple_defaults

import rego.v1

default _z := 1

default _z := 2

deny contains "x" if _z == 1
