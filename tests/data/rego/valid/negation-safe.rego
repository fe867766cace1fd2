package corpus.negation_safe

import rego.v1

deny contains msg if {
	some name in input.queue
	not input.promotions[name]
	msg := sprintf("%s is not recorded", [name])
}
