package policies.freeze_window_test

import rego.v1

import data.policies.freeze_window as policy

# 2027-01-01T00:00:00Z is a Friday; 01:00 in Berlin (CET, +01:00).
_friday_utc_midnight := 1798761600000000000

_hour := 3600000000000

_doc(now, parameters) := {"now_ns": now, "stage": {"name": "prod"}, "promotion": null, "parameters": parameters}

_denials(now, parameters) := policy.denials(_doc(now, parameters))

_one(now, parameters) := d if {
	some d in _denials(now, parameters)
}

test_no_windows_no_denial if {
	count(_denials(_friday_utc_midnight, {"windows": []})) == 0
}

test_a_one_off_window_holds_until_its_end if {
	params := {"windows": [{"name": "year-end", "start": "2026-12-23T00:00:00+01:00", "end": "2027-01-04T00:00:00+01:00"}]}
	d := _one(_friday_utc_midnight, params)
	d.code == "freeze_window"
	d.retry_after == time.parse_rfc3339_ns("2027-01-04T00:00:00+01:00")
	contains(d.message, "year-end")
	# the end is exclusive, the start inclusive
	count(_denials(time.parse_rfc3339_ns("2027-01-04T00:00:00+01:00"), params)) == 0
	count(_denials(time.parse_rfc3339_ns("2026-12-23T00:00:00+01:00"), params)) == 1
}

test_whole_days_end_at_the_first_midnight_outside_them if {
	params := {"time_zone": "Europe/Berlin", "windows": [{"name": "weekend", "days": ["Saturday", "Sunday"]}]}
	saturday_noon := _friday_utc_midnight + (35 * _hour) # Sat 12:00 Berlin
	d := _one(saturday_noon, params)
	d.retry_after == time.parse_rfc3339_ns("2027-01-04T00:00:00+01:00") # Monday 00:00 Berlin
	count(_denials(_friday_utc_midnight, params)) == 0 # Friday 01:00 Berlin
}

test_a_time_of_day_window_within_a_day if {
	params := {"time_zone": "UTC", "windows": [{"name": "lunch", "days": ["Friday"], "from": "12:00", "to": "13:30"}]}
	d := _one(_friday_utc_midnight + (12 * _hour), params)
	d.retry_after == _friday_utc_midnight + (13 * _hour) + (30 * 60000000000)
	count(_denials(_friday_utc_midnight + (14 * _hour), params)) == 0
	count(_denials(_friday_utc_midnight + (11 * _hour), params)) == 0
}

test_a_window_across_midnight_from_both_sides if {
	params := {"time_zone": "UTC", "windows": [{"name": "nights", "days": ["Thursday"], "from": "22:00", "to": "06:00"}]}
	# Thursday 23:00: started today, ends Friday 06:00
	_one(_friday_utc_midnight - _hour, params).retry_after == _friday_utc_midnight + (6 * _hour)
	# Friday 05:00: started yesterday (Thursday), same end
	_one(_friday_utc_midnight + (5 * _hour), params).retry_after == _friday_utc_midnight + (6 * _hour)
	# Friday 07:00 and Friday 23:00 (Friday is not listed): open
	count(_denials(_friday_utc_midnight + (7 * _hour), params)) == 0
	count(_denials(_friday_utc_midnight + (23 * _hour), params)) == 0
}

test_a_window_names_its_own_time_zone if {
	params := {"time_zone": "UTC", "windows": [{"name": "ny-morning", "days": ["Thursday"], "from": "18:00", "to": "20:00", "time_zone": "America/New_York"}]}
	# 2027-01-01T00:00Z is Thursday 19:00 in New York
	d := _one(_friday_utc_midnight, params)
	d.retry_after == _friday_utc_midnight + _hour
}

test_overlapping_windows_each_deny if {
	params := {"windows": [
		{"name": "a", "start": "2026-12-31T00:00:00+00:00", "end": "2027-01-02T00:00:00+00:00"},
		{"name": "b", "days": ["Friday"]},
	]}
	count(_denials(_friday_utc_midnight, params)) == 2
}
