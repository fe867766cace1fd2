package policies.admission_test

import rego.v1

import data.policies.admission

_promotion(name, phase, key) := {
	"name": name, "stage": "prod", "phase": phase, "queue_key": key,
	"terminal": phase in {"Succeeded", "Failed", "Errored", "Aborted"},
}

_state(p, queue) := {
	"namespace": "kargo-demo",
	"promotion": p,
	"stage": {"name": "prod", "has_verification": false, "health": "Healthy"},
	"queue": [q.name | some q in queue],
	"promotions": {q.name: q | some q in array.concat(queue, [p])},
	"parameters": {},
}

_codes(doc) := {d.code | some d in admission.denials(doc)}

test_head_of_the_queue_is_admitted if {
	p := _promotion("prod.a", "Pending", "01A")
	count(_codes(_state(p, [p]))) == 0
}

test_unknown_promotion_is_denied if {
	doc := {"namespace": "kargo-demo", "promotion": null, "stage": null, "queue": [], "promotions": {}}
	_codes(doc) == {"promotion_unknown"}
}

test_terminal_promotion_is_denied if {
	p := _promotion("prod.a", "Succeeded", "01A")
	_codes(_state(p, [])) == {"promotion_terminal"}
}

test_missing_stage_is_denied if {
	p := _promotion("prod.a", "Pending", "01A")
	doc := object.union(_state(p, [p]), {"stage": null})
	_codes(doc) == {"stage_missing"}
}

test_another_running_promotion_blocks if {
	running := _promotion("prod.b", "Running", "01B")
	p := _promotion("prod.a", "Pending", "01A")
	_codes(_state(p, [running, p])) == {"another_running"}
}

test_an_older_pending_promotion_goes_first if {
	older := _promotion("prod.a", "Pending", "01A")
	p := _promotion("prod.b", "", "01B")
	denials := admission.denials(_state(p, [older, p]))
	{x.code | some x in denials} == {"not_queue_head"}
	some denial in denials
	contains(denial.message, "the head is prod.a")
}

test_a_newer_pending_promotion_does_not_block if {
	p := _promotion("prod.a", "Pending", "01A")
	newer := _promotion("prod.b", "Pending", "01B")
	count(_codes(_state(p, [p, newer]))) == 0
}

test_the_running_promotion_itself_is_admitted if {
	p := _promotion("prod.a", "Running", "01A")
	newer := _promotion("prod.b", "Pending", "01B")
	count(_codes(_state(p, [p, newer]))) == 0
}

# Kargo started it, so it is the head: waiting for an older Pending one (which Kargo will not start
# while this one runs) would wedge the Stage.
test_a_running_promotion_is_never_told_to_wait_for_older_ones if {
	older := _promotion("prod.a", "Pending", "01A")
	p := _promotion("prod.b", "Running", "01B")
	count(_codes(_state(p, [p, older]))) == 0
}
