package corpus.import_own_package

import rego.v1

import data.corpus.import_own_package as own

_limit := 3

deny contains "long queue" if count(input.queue) > own._limit
