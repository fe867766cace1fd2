package corpus.default_and_function

import rego.v1

default allow_hours := [9, 17]

_within(h, range) if {
	h >= range[0]
	h < range[1]
}

deny contains "outside hours" if {
	not _within(input.hour, allow_hours)
}
