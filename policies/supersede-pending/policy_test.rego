package policies.supersede_pending_test

import rego.v1

import data.policies.supersede_pending as policy

_p(name, freight, phase, key) := {"name": name, "freight": freight, "phase": phase, "queue_key": key, "terminal": false}

_freight := {
	"f1": {"alias": "old-one", "origin": "Warehouse/w", "created_at_ns": 100},
	"f2": {"alias": "new-one", "origin": "Warehouse/w", "created_at_ns": 200},
	"f3": {"alias": "newest", "origin": "Warehouse/w", "created_at_ns": 300},
	"g1": {"alias": "other", "origin": "Warehouse/other", "created_at_ns": 400},
}

_doc(asked, promotions) := {
	"promotion": promotions[asked],
	"queue": [p.name | some p in promotions],
	"promotions": promotions,
	"freight": _freight,
	"parameters": {},
}

_codes(doc) := {d.code | some d in policy.denials(doc)}

_aborted(doc) := {a.promotion | some a in policy.aborts(doc)}

test_newer_freight_of_the_same_origin_supersedes_older_pending_ones if {
	promotions := {
		"a": _p("a", "f1", "Pending", "01A"),
		"b": _p("b", "f2", "Pending", "01B"),
		"c": _p("c", "f3", "", "01C"),
	}
	_aborted(_doc("c", promotions)) == {"a", "b"}
	count(_codes(_doc("c", promotions))) == 0
	_codes(_doc("a", promotions)) == {"superseded"}
	some denial in policy.denials(_doc("a", promotions))
	contains(denial.message, "newest")
	contains(denial.message, "Promotion c")
}

test_other_origins_and_the_same_freight_are_left_alone if {
	promotions := {
		"a": _p("a", "f1", "Pending", "01A"),
		"b": _p("b", "g1", "Pending", "01B"),
		"c": _p("c", "f1", "Pending", "01C"),
	}
	count(_aborted(_doc("a", promotions))) == 0
}

test_a_running_promotion_is_not_superseded_by_default if {
	promotions := {
		"a": _p("a", "f1", "Running", "01A"),
		"b": _p("b", "f2", "Pending", "01B"),
	}
	count(_aborted(_doc("b", promotions))) == 0
	with_running := object.union(_doc("b", promotions), {"parameters": {"phases": ["Pending", "Running"]}})
	_aborted(with_running) == {"a"}
}

test_older_freight_queued_later_is_superseded_not_the_newer if {
	promotions := {
		"a": _p("a", "f2", "Pending", "01A"),
		"b": _p("b", "f1", "Pending", "01B"),
	}
	_aborted(_doc("a", promotions)) == {"b"}
}

test_unknown_freight_supersedes_nothing if {
	promotions := {
		"a": _p("a", "f1", "Pending", "01A"),
		"b": _p("b", "zz", "Pending", "01B"),
	}
	count(_aborted(_doc("a", promotions))) == 0
}
