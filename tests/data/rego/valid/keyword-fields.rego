package corpus.keyword_fields

import rego.v1

deny contains "x" if {
	input.labels.contains == "in"
	input.labels["if"] == "else"
}
