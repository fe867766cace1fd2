package corpus.output_argument

import rego.v1

deny contains "too many" if {
	count(input.queue, n)
	n > 10
}
