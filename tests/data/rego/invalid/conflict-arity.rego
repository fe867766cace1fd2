# expect: rego_type_error
# opa: rejects
package corpus.conflict_arity

import rego.v1

_f(a) := a

_f(a, b) := a + b

deny contains "x" if _f(1)
