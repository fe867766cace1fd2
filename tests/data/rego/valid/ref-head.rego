package corpus.ref_head

import rego.v1

stage.health := input.stage.health

stage.verified if input.verification.phase == "Successful"

deny contains "unhealthy" if stage.health == "Unhealthy"
