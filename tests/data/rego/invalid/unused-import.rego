# expect: rego_compile_error
# opa: rejects
package corpus.unused_import

import rego.v1

import data.corpus.helpers

deny contains "x" if input.x
