"""Decision ids are ULIDs of the evaluation time: they sort by it, and the log's time bounds rely on that."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from ulid import ULID

from policy_server.store import new_decision_id
from policy_server.store._decisions import ulid_floor


def test_ids_are_ulids_of_the_evaluation_millisecond_and_sort_by_it():
    start = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
    moments = [start + timedelta(milliseconds=n) for n in range(0, 2000, 7)]
    ids = [new_decision_id(m) for m in moments]
    for moment, made in zip(moments, ids, strict=True):
        parsed = ULID.from_str(made)
        assert str(parsed) == made and len(made) == 26
        assert parsed.milliseconds == int(moment.timestamp() * 1000)
        assert ulid_floor(moment) <= made < ulid_floor(moment + timedelta(milliseconds=1))
    assert ids == sorted(ids)
    same = {new_decision_id(start) for _ in range(1000)}
    assert len(same) == 1000  # 80 random bits within one millisecond


def test_a_naive_time_reads_as_the_store_reads_it():
    aware = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    naive = aware.astimezone().replace(tzinfo=None)  # local wall time, as the store interprets naive values
    assert new_decision_id(naive)[:10] == new_decision_id(aware)[:10]


def test_a_forked_process_makes_other_ids_than_its_parent():
    moment = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    new_decision_id(moment)  # the generator has state before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_decision_id(moment).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 26).decode() != new_decision_id(moment)
