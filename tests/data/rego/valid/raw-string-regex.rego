package corpus.raw_string_regex

import rego.v1

deny contains "bad name" if {
	not regex.match(`^[a-z0-9.-]+$`, input.promotion.name)
}
