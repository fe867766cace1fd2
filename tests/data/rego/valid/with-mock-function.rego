package corpus.with_mock_function

import rego.v1

_upper_name := upper(input.name)

_mock(x) := x

deny contains "x" if {
	_upper_name == "a" with upper as _mock
}
