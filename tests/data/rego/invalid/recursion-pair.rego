# expect: rego_recursion_error
# opa: rejects
package corpus.recursion_pair

import rego.v1

_a if _b

_b if _a

deny contains "x" if _a
