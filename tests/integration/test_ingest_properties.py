"""Property-based ingestion: any order, any duplication, ends at the newest version; malformed never stored."""

from __future__ import annotations

import asyncio
import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from policy_server.errors import InvalidState
from policy_server.kargo import Kind, parse_body
from policy_server.store import Database, StateStore, upgrade
from policy_server.store._rows import TABLES
from tests.conftest import kargo_fixtures_dir, load

P6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"
TEMPLATE = load(kargo_fixtures_dir() / "snapshot" / "promotions" / f"{P6}.json")
NAMES = [f"prod.01kztrdxmgg3c76w16pjvk9z{i}.759376c" for i in "abc"]


def _event(name: str, rv: int, kind: str) -> dict:
    obj = copy.deepcopy(TEMPLATE)
    obj["metadata"]["name"] = name
    obj["metadata"]["resourceVersion"] = str(rv)
    obj["status"]["phase"] = ["Pending", "Running", "Succeeded"][rv % 3]
    return {"type": kind, "object": obj}


histories = st.lists(
    st.tuples(st.sampled_from(NAMES), st.integers(1, 10_000), st.sampled_from(["ADDED", "MODIFIED", "DELETED"])),
    min_size=1,
    max_size=25,
)


def _expected(events: list[tuple[str, int, str]]) -> dict[str, tuple[int, bool]]:
    """Per object: the newest resourceVersion and whether that version is a deletion (DELETED wins a tie)."""
    out: dict[str, tuple[int, bool]] = {}
    for name, rv, kind in events:
        deleted = kind == "DELETED"
        current = out.get(name)
        if current is None or rv > current[0] or (rv == current[0] and deleted):
            out[name] = (rv, deleted)
    return out


def _run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=histories, order=st.randoms(use_true_random=False), chunks=st.integers(1, 5), repeat=st.booleans())
def test_any_order_and_duplication_ends_at_the_newest_version(tmp_path_factory, events, order, chunks, repeat):
    path = tmp_path_factory.mktemp("prop") / "store.db"

    async def scenario() -> dict[str, tuple[str, bool]]:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db)
        store = StateStore(db)
        delivered = [_event(*e) for e in events] * (2 if repeat else 1)
        order.shuffle(delivered)
        size = max(1, len(delivered) // chunks)
        for start in range(0, len(delivered), size):
            body = "\n".join(json.dumps(e) for e in delivered[start : start + size]).encode()
            await store.apply(parse_body(body, "application/x-ndjson"))
        table = TABLES[Kind.PROMOTION]
        async with db.read() as conn:
            rows = (await conn.execute(select(table.c.name, table.c.resource_version, table.c.deleted))).all()
        await db.dispose()
        return {r.name: (r.resource_version, bool(r.deleted)) for r in rows}

    stored = _run(scenario())
    expected = {name: (str(rv), deleted) for name, (rv, deleted) in _expected(events).items()}
    assert stored == expected


MUTATIONS = [
    lambda o: o["metadata"].pop("name"),
    lambda o: o["metadata"].update(namespace=7),
    lambda o: o["spec"].update(stage=None),
    lambda o: o["status"].update(phase=["Pending"]),
    lambda o: o["metadata"].update(creationTimestamp="soon"),
    lambda o: o["metadata"].update(labels={"a": 1}),
    lambda o: o.update(spec="x"),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    good=st.lists(st.sampled_from(NAMES), max_size=5),
    bad_at=st.integers(0, 5),
    mutation=st.sampled_from(MUTATIONS),
)
def test_a_malformed_object_anywhere_keeps_the_whole_request_out(tmp_path_factory, good, bad_at, mutation):
    body = _stream_with(good, bad_at, mutation)
    error, counts = _run(_rejected(tmp_path_factory.mktemp("bad") / "store.db", body))
    assert error.line is not None
    assert counts == {"Stage": 0, "Promotion": 0, "Freight": 0, "AnalysisRun": 0}


def _stream_with(good: list[str], bad_at: int, mutate) -> bytes:  # type: ignore[no-untyped-def]
    """An NDJSON stream of ADDED events with one broken MODIFIED event inserted at ``bad_at``."""
    events = [_event(name, 100 + i, "ADDED") for i, name in enumerate(good)]
    broken = _event(NAMES[0], 999, "MODIFIED")
    mutate(broken["object"])
    events.insert(min(bad_at, len(events)), broken)
    return "\n".join(json.dumps(e) for e in events).encode()


async def _rejected(path, body: bytes):  # type: ignore[no-untyped-def]
    """Apply ``body`` to a fresh store: the first error it was refused with, and what the store holds after.
    Then the same object, well formed, must still be recorded (nothing the refused request did poisons it)."""
    db = Database(f"sqlite+aiosqlite:///{path}")
    await upgrade(db)
    store = StateStore(db)
    try:
        try:
            await store.apply(parse_body(body, "application/x-ndjson"))
        except InvalidState as exc:
            error = exc.errors[0]
        else:
            raise AssertionError("a malformed object was accepted")
        counts = await store.counts()
        await store.apply(parse_body(json.dumps(_event(NAMES[0], 1000, "ADDED")).encode(), "application/json"))
        assert (await store.counts())["Promotion"] == 1
        return error, counts
    finally:
        await db.dispose()


_ASCII_DIGITS = "0123456789"
odd_resource_versions = st.one_of(
    # digits of other scripts (Python's isdigit() takes them; int() refuses some, and Kubernetes never serves them)
    st.text(st.characters(categories=["Nd", "No"], exclude_characters=_ASCII_DIGITS), min_size=1, max_size=4),
    st.text(min_size=1, max_size=12).filter(lambda t: not (t.isascii() and t.isdigit())),
    st.integers(10**20, 10**30).map(str),  # beyond any etcd revision
)
# RFC 3339 times whose UTC instant falls before year 1 or after year 9999.
out_of_range_times = st.one_of(
    st.builds(lambda h, m: f"0001-01-01T{h:02d}:{m:02d}:00+{h + 1:02d}:00", st.integers(0, 12), st.integers(0, 59)),
    st.builds(lambda h, m: f"9999-12-31T{h:02d}:{m:02d}:00-{24 - h:02d}:00", st.integers(12, 23), st.integers(0, 59)),
)


def _nest(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


hostile = st.one_of(
    st.builds(lambda rv: ("metadata.resourceVersion", lambda o: o["metadata"].update(resourceVersion=rv)),
              odd_resource_versions),
    st.builds(lambda t: ("metadata.creationTimestamp", lambda o: o["metadata"].update(creationTimestamp=t)),
              out_of_range_times),
    st.builds(lambda t: ("status.startedAt", lambda o: o.setdefault("status", {}).update(startedAt=t)),
              out_of_range_times),
    st.builds(lambda d: (None, lambda o: o.update(spec={"deep": _nest(d)})), st.integers(70, 400)),
)  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(good=st.lists(st.sampled_from(NAMES), max_size=3), bad_at=st.integers(0, 3), shape=hostile)
def test_hostile_shapes_are_named_and_keep_the_whole_request_out(tmp_path_factory, good, bad_at, shape):
    """Odd resourceVersions, times UTC cannot hold, deep nesting: a 422 naming the line and field, nothing stored,
    and later updates of the same object still work."""
    field, mutate = shape
    body = _stream_with(good, bad_at, mutate)
    error, counts = _run(_rejected(tmp_path_factory.mktemp("hostile") / "store.db", body))
    assert error.line == min(bad_at, len(good)) + 1
    if field is not None:
        assert error.field is not None and error.field.endswith(field), error
    assert counts == {"Stage": 0, "Promotion": 0, "Freight": 0, "AnalysisRun": 0}
