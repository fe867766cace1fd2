package corpus.wildcard_iteration

import rego.v1

deny contains "something runs" if {
	input.promotions[_].phase == "Running"
}
