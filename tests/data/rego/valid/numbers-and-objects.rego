package corpus.numbers_and_objects

import rego.v1

deny contains msg if {
	created := object.get(input.promotion, "created_at_ns", 0)
	age_s := (input.now_ns - created) / 1000000000
	age_s > 3600
	msg := sprintf("waited %v s", [round(age_s)])
}
