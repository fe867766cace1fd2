package corpus.every_and_some

import rego.v1

deny contains "queue not ready" if {
	some name in input.queue
	startswith(name, input.stage.name)
	every other in input.queue {
		other != ""
	}
}
