# expect: rego_recursion_error
# opa: rejects
package corpus.recursion_function

import rego.v1

_f(x) := _f(x)

deny contains "x" if _f(1)
