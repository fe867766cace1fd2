# METADATA
# title: Basic admission
# description: >-
#   Only a known, non-terminal Promotion of an existing Stage may start, one at a time, in the
#   Stage's FIFO order (the ULID in Promotion names).
package policies.admission

import rego.v1

deny contains d if some d in denials(input)

# The decision is a function of the input document, so that tests call it without `with input as`
# (which crashes regopy 1.5.2 over rules that call builtins; see policies/README.md).
denials(inp) := ((_unknown(inp) | _terminal(inp)) | (_stage_missing(inp) | _running(inp))) | _not_head(inp)

_unknown(inp) := {{
	"code": "promotion_unknown",
	"message": "the Promotion is not recorded: post its state to /v1/state first",
}} if {
	inp.promotion == null
} else := set()

_terminal(inp) := {{
	"code": "promotion_terminal",
	"message": sprintf("Promotion %s already ended (%s)", [inp.promotion.name, inp.promotion.phase]),
}} if {
	inp.promotion.terminal == true
} else := set()

_stage_missing(inp) := {{
	"code": "stage_missing",
	"message": sprintf("Stage %s/%s is not recorded", [inp.namespace, inp.promotion.stage]),
}} if {
	inp.promotion != null
	inp.stage == null
} else := set()

# Another Promotion of the Stage is Running: Kargo runs one at a time.
_running(inp) := {d |
	inp.promotion.terminal == false
	some name in inp.queue
	name != inp.promotion.name
	inp.promotions[name].phase == "Running"
	d := {"code": "another_running", "message": sprintf("Promotion %s of Stage %s is Running", [name, inp.promotion.stage])}
}

# Older non-terminal Promotions go first: only the head of the queue may start.
_ahead(inp) := [name |
	some name in inp.queue
	name != inp.promotion.name
	inp.promotions[name].phase != "Running"
	inp.promotions[name].queue_key < inp.promotion.queue_key
]

# concat, not sprintf: regopy prints a string made by a comprehension with quotes under %s.
_not_head(inp) := {{
	"code": "not_queue_head",
	"message": concat("", [
		sprintf("%d older Promotion(s) of Stage %s are queued ahead; the head is ", [count(ahead), inp.promotion.stage]),
		ahead[0],
	]),
}} if {
	inp.promotion.terminal == false
	# Kargo already started a Running Promotion (its http step asks from inside): it is the head, and
	# waiting for older ones Kargo will not start while it runs would wedge the Stage.
	inp.promotion.phase != "Running"
	ahead := _ahead(inp)
	count(ahead) > 0
} else := set()
