# expect: rego_compile_error
# opa: rejects
package corpus.unused_argument

import rego.v1

_f(a, b) := a

deny contains "x" if _f(1, 2)
