# expect: rego_recursion_error
# opa: rejects
package corpus.recursion_self

import rego.v1

_e := data.corpus.recursion_self._e

deny contains "x" if _e
