package corpus.test_with_input

import rego.v1

_count := count(input.queue)

deny contains "busy" if _count > 2

test_busy if {
	deny == {"busy"} with input.queue as ["a", "b", "c"]
}
