# expect: lint_forbidden_builtin
# opa: accepts
package corpus.with_http_send

import rego.v1

deny contains msg if {
	msg := count({"method": "get", "url": "http://127.0.0.1:1/"}) with count as http.send
}
