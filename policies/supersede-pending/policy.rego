# METADATA
# title: Supersede pending Promotions
# description: >-
#   When newer Freight is queued for a Stage, older Pending Promotions of Freight from the same origin
#   are aborted: there is no point deploying a version a newer one replaces (Kargo #3108).
package policies.supersede_pending

import rego.v1

deny contains d if some d in denials(input)

abort contains a if some a in aborts(input)

denials(inp) := {{
	"code": "superseded",
	# concat, not sprintf: `newer` comes from a comprehension (policies/README.md, rule 6).
	"message": concat("", ["Freight ", _freight_label(inp, inp.promotion.freight), " is superseded by newer Freight ", _freight_label(inp, newer.freight), " from ", _origin(inp, newer.freight), ", queued in Promotion ", newer.name]),
}} if {
	inp.promotion != null
	superseded := superseded_by(inp)
	newer := superseded[inp.promotion.name]
} else := set()

aborts(inp) := {a |
	superseded := superseded_by(inp)
	some name in object.keys(superseded)
	newer := superseded[name]
	a := {
		"promotion": name,
		"reason": concat("", ["superseded by Promotion ", newer.name, " of newer Freight ", _freight_label(inp, newer.freight), " from ", _origin(inp, newer.freight)]),
	}
}

# name of an older Pending Promotion → the newest queued Promotion of newer Freight from the same origin.
superseded_by(inp) := {name: newest |
	some name in inp.queue
	old := inp.promotions[name]
	old.phase in _phases(inp)
	candidates := [p |
		some other in inp.queue
		p := inp.promotions[other]
		_newer_same_origin(inp, p.freight, old.freight)
	]
	count(candidates) > 0
	newest := _newest(inp, candidates)
}

_phases(inp) := {p | some p in object.get(inp.parameters, "phases", ["Pending", ""])}

_newer_same_origin(inp, candidate, old) if {
	candidate != old
	a := inp.freight[candidate]
	b := inp.freight[old]
	a.origin != null
	a.origin == b.origin
	a.created_at_ns > b.created_at_ns
}

# The candidate whose Freight is the newest (then the newest Promotion of it).
_newest(inp, candidates) := p if {
	newest_freight := max({inp.freight[c.freight].created_at_ns | some c in candidates})
	latest := max({c.queue_key | some c in candidates; inp.freight[c.freight].created_at_ns == newest_freight})
	some p in candidates
	p.queue_key == latest
}

_freight_label(inp, name) := concat("", [inp.freight[name].alias, " (", substring(name, 0, 7), ")"]) if is_string(inp.freight[name].alias)

_freight_label(inp, name) := substring(name, 0, 7) if not is_string(inp.freight[name].alias)

_origin(inp, name) := inp.freight[name].origin
