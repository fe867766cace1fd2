package corpus.multiple_bodies

import rego.v1

_risky if { input.stage.name == "prod" } { input.stage.name == "uat" }

deny contains "risky" if _risky
