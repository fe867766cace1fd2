package corpus.some_key_value

import rego.v1

deny contains msg if {
	some name, promotion in input.promotions
	promotion.phase == "Running"
	msg := sprintf("%s is running", [name])
}
