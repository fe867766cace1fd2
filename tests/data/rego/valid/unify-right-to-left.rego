package corpus.unify_right_to_left

import rego.v1

deny contains msg if {
	input.stage.name = stage
	msg := concat(" ", ["stage", stage])
	stage == "prod"
}
