# expect: rego_type_error
# opa: rejects
package corpus.conflict_kinds

import rego.v1

_y contains 1

_y := 2

deny contains "x" if _y
