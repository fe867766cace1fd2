# expect: lint_forbidden_builtin
# opa: accepts
package corpus.call_http_send

import rego.v1

deny contains msg if {
	response := http.send({"method": "get", "url": "http://127.0.0.1:1/"})
	msg := response.body
}
