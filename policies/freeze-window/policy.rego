# METADATA
# title: Freeze windows
# description: >-
#   Deny Promotions into the Stages in scope during configured freeze windows: recurring ones (days of
#   the week, optionally a time of day, in a time zone) and one-off dates. The denial names the window
#   and when it ends, and carries retry_after (when asking again can change the answer).
package policies.freeze_window

import rego.v1

deny contains d if some d in denials(input)

denials(inp) := {d |
	some w in active(inp)
	d := {
		"code": "freeze_window",
		"message": sprintf("Stage %s is frozen by window %s until %s", [_stage_name(inp), w.name, time.format([w.ends_ns, w.time_zone, "2006-01-02T15:04:05Z07:00"])]),
		"retry_after": w.ends_ns,
	}
}

_stage_name(inp) := inp.stage.name if inp.stage != null

_stage_name(inp) := object.get(object.get(inp, "promotion", {}), "stage", "?") if inp.stage == null

# Every configured window that covers now: {name, time_zone, ends_ns}.
active(inp) := {w |
	windows := object.get(inp.parameters, "windows", [])
	# `some i, w in xs` inside a comprehension does not parse in regopy (the comma reads as a set's).
	some i
	window := windows[i]
	tz := object.get(window, "time_zone", object.get(inp.parameters, "time_zone", "UTC"))
	ends := _ends(inp.now_ns, window, tz)
	w := {"name": object.get(window, "name", sprintf("window %d", [i])), "time_zone": tz, "ends_ns": ends}
}

_day_ns := 86400000000000

_minute_ns := 60000000000

# A one-off window: RFC 3339 start and end with an offset (+01:00; regopy rejects a trailing Z).
_ends(now, window, _) := end if {
	start := time.parse_rfc3339_ns(window.start)
	end := time.parse_rfc3339_ns(window.end)
	start <= now
	now < end
}

# Whole days: it ends at the first local midnight that starts a day not in the window.
_ends(now, window, tz) := end if {
	not window.start
	not window.from
	time.weekday([now, tz]) in window.days
	k := min({n | some n in numbers.range(1, 7); not time.weekday([now + n * _day_ns, tz]) in window.days} | {7})
	end := _midnight(now, tz) + k * _day_ns
}

# A time of day within one day (from < to).
_ends(now, window, tz) := end if {
	not window.start
	from := _minutes(window.from)
	to := _minutes(window.to)
	from < to
	time.weekday([now, tz]) in window.days
	minute := _minute_of_day(now, tz)
	from <= minute
	minute < to
	end := _midnight(now, tz) + to * _minute_ns
}

# Across midnight (to <= from), started today: ends tomorrow at `to`.
_ends(now, window, tz) := end if {
	not window.start
	from := _minutes(window.from)
	to := _minutes(window.to)
	to <= from
	time.weekday([now, tz]) in window.days
	_minute_of_day(now, tz) >= from
	end := _midnight(now, tz) + _day_ns + to * _minute_ns
}

# Across midnight, started yesterday: ends today at `to`.
_ends(now, window, tz) := end if {
	not window.start
	from := _minutes(window.from)
	to := _minutes(window.to)
	to <= from
	time.weekday([now - _day_ns, tz]) in window.days
	_minute_of_day(now, tz) < to
	end := _midnight(now, tz) + to * _minute_ns
}

# "HH:MM" → minutes of the day. Digit by digit: regopy's to_number keeps leading zeros ("08" → 08, not JSON).
_minutes(hhmm) := (((_digit(hhmm, 0) * 10) + _digit(hhmm, 1)) * 60) + ((_digit(hhmm, 3) * 10) + _digit(hhmm, 4))

_digit(text, at) := indexof("0123456789", substring(text, at, 1))

_minute_of_day(now, tz) := (clock[0] * 60) + clock[1] if clock := time.clock([now, tz])

# Local midnight of now's day (a day with a DST change is an hour off after the change).
_midnight(now, tz) := now - (((((clock[0] * 3600) + (clock[1] * 60)) + clock[2]) * 1000000000) + (now % 1000000000)) if {
	clock := time.clock([now, tz])
}
