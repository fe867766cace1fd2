"""policy-server benchmarks, side by side in one run: the app's own trivial endpoint (the ceiling) and a real OPA
answering the same question with the same input (the peer), next to policy-server's decisions; then ingestion,
the decision log and memory.

    python bench/run.py            # quick: 1k recorded Promotions, 5 s per measurement, small log and memory runs
    python bench/run.py --full     # 1k, 100k and 1M recorded Promotions, 1M logged decisions, 200k for RSS
    python bench/run.py --write    # also rewrite bench/RESULTS.md

Decision load comes from wrk (Debian package) at 16 connections on this machine. PostgreSQL variants run when
POLICY_SERVER_TEST_POSTGRES_URL (or --postgres) names a server; OPA ones when an `opa` binary is found. Compare
numbers only within one run: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cluster import cluster_suite  # noqa: E402

TOKEN = "pst_bench-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CEILING_PATH = "/v1/bench/ceiling"  # registered by bench/ceiling_app.py
PROBE_CEILING_PATH = "/v1/bench/ceiling/probe"  # the same, plus the store's probe of the question's Stage
CONNECTIONS = 16
T0 = datetime(2026, 8, 1, tzinfo=UTC)


@dataclass
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    ceiling: float | None = None
    peer: float | None = None
    post: float | None = None
    requests: int = 0


@dataclass
class Report:
    decisions: list[Result] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


# --- a store of realistic Stage histories, filled directly (not through HTTP) -------------------------------


def _ulid(ms: int, n: int) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value, out = ms, []
    for _ in range(10):
        out.append(alphabet[value % 32])
        value //= 32
    return "".join(reversed(out)) + f"{n:016d}"


def _db_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def store_rows(promotions: int, stages: int) -> tuple[dict[str, list[dict]], list[tuple[str, str]]]:
    """Rows for ``stages`` Stages across 100 namespaces: each has verification, a Succeeded history whose newest
    Promotion passed its AnalysisRun, and one Pending Promotion at the head of its queue (the question asked)."""
    from policy_server.kargo import queue_key

    per_stage = max(2, promotions // stages)
    rows: dict[str, list[dict]] = {"stages": [], "promotions": [], "analysis_runs": [], "freight": []}
    heads: list[tuple[str, str]] = []
    for n in range(min(100, stages)):
        namespace = f"project-{n}"
        status = {"verifiedIn": {f"stage-{n}": {}}, "currentlyIn": {f"stage-{n}": {}}}
        rows["freight"].append({
            "namespace": namespace, "name": "f0ea4d1b", "uid": None, "resource_version": "1", "deleted": 0,
            "created_at": _db_time(T0), "recorded_at": _db_time(T0), "alias": "mighty-hippo",
            "origin_kind": "Warehouse", "origin_name": "kargo-demo",
            "object": json.dumps({"kind": "Freight", "alias": "mighty-hippo", "metadata": {"name": "f0ea4d1b"},
                                  "status": status}),
        })  # fmt: skip
    for s in range(stages):
        namespace, stage = f"project-{s % 100}", f"stage-{s}"
        last_collection, last_finished = None, None
        for i in range(per_stage):
            created = T0 + timedelta(minutes=i)
            name = f"{stage}.{_ulid(int(created.timestamp() * 1000), s)}.f0ea4d1"
            pending = i == per_stage - 1
            finished = created + timedelta(seconds=30)
            collection = None if pending else f"c{s:05d}{i:04d}"
            if not pending:
                last_collection, last_finished = collection, finished
            rows["promotions"].append({
                "namespace": namespace, "name": name, "uid": None, "resource_version": str(i + 2), "deleted": 0,
                "created_at": _db_time(created), "recorded_at": _db_time(created), "stage": stage,
                "freight": "f0ea4d1b", "phase": "Pending" if pending else "Succeeded", "terminal": 0 if pending else 1,
                "queue_key": queue_key(name), "freight_collection": collection,
                "started_at": None if pending else _db_time(created),
                "finished_at": None if pending else _db_time(finished),
                "abort_requested": 0, "object": json.dumps({"kind": "Promotion", "metadata": {"name": name}}),
            })  # fmt: skip
            if pending:
                heads.append((namespace, name))
        run_created = last_finished + timedelta(seconds=5)
        rows["analysis_runs"].append({
            "namespace": namespace, "name": f"{stage}.run", "uid": None, "resource_version": "1", "deleted": 0,
            "created_at": _db_time(run_created), "recorded_at": _db_time(run_created), "stage": stage,
            "freight_collection": last_collection, "promotion": None, "phase": "Successful", "terminated": 0,
            "started_at": _db_time(run_created), "completed_at": _db_time(run_created + timedelta(minutes=2)),
            "object": json.dumps({"kind": "AnalysisRun", "metadata": {"name": f"{stage}.run"}}),
        })  # fmt: skip
        rows["stages"].append({
            "namespace": namespace, "name": stage, "uid": None, "resource_version": "1", "deleted": 0,
            "created_at": _db_time(T0), "recorded_at": _db_time(T0), "has_verification": 1, "health_status": "Healthy",
            "current_promotion": None, "last_promotion": None, "current_freight_collection": last_collection,
            "object": json.dumps({"kind": "Stage", "metadata": {"name": stage}}),
        })  # fmt: skip
    return rows, heads


def fill_sqlite(path: Path, promotions: int, stages: int) -> list[tuple[str, str]]:
    from policy_server.store import Database, upgrade

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    rows, heads = store_rows(promotions, stages)
    conn = sqlite3.connect(path)
    with conn:
        for table, items in rows.items():
            columns = list(items[0])
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            conn.executemany(sql, [tuple(r[c] for c in columns) for r in items])
    conn.close()
    return heads


def fill_postgres(url: str, promotions: int, stages: int) -> list[tuple[str, str]]:
    from sqlalchemy import insert

    from policy_server.store import Database, upgrade
    from policy_server.store._models import metadata

    rows, heads = store_rows(promotions, stages)

    def typed(table: str, row: dict) -> dict:
        out = dict(row)
        for column in metadata.tables[table].columns:
            value = out.get(column.name)
            if isinstance(value, str) and column.name.endswith("_at"):
                out[column.name] = datetime.fromisoformat(value).replace(tzinfo=UTC)
            elif isinstance(value, int) and column.type.python_type is bool:
                out[column.name] = bool(value)
        return out

    async def fill() -> None:
        db = Database(url)
        await upgrade(db)
        async with db.write() as conn:
            for table, items in rows.items():
                for start in range(0, len(items), 5000):
                    chunk = [typed(table, r) for r in items[start : start + 5000]]
                    await conn.execute(insert(metadata.tables[table]), chunk)
        await db.dispose()

    asyncio.run(fill())
    return heads


# --- processes and load ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command: list[str], env: dict[str, str], ready: str, timeout: float = 90) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command[0]} did not start")


@contextmanager
def server(database_url: str, workers: int, ready_timeout: float = 90, **settings: str) -> Iterator[str]:
    """A policy-server process on ``database_url``; yields its base URL once ``/ready``."""
    port = _free_port()
    env = {**os.environ, "POLICY_SERVER_DATABASE_URL": database_url, "POLICY_SERVER_PORT": str(port),
           "POLICY_SERVER_BOOTSTRAP_TOKEN": TOKEN, "POLICY_SERVER_RATE_LIMIT_PER_S": "0",
           "POLICY_SERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
    env.update({f"POLICY_SERVER_{k.upper()}": v for k, v in settings.items()})
    # The product's `policy-server run`, with the bench's POST ceiling route added to its app (bench/serve.py).
    command = [sys.executable, str(ROOT / "bench" / "serve.py"), "run", "--workers", str(workers)]
    process = _start(command, env, f"http://127.0.0.1:{port}/ready", ready_timeout)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


@contextmanager
def opa_server(opa: str) -> Iterator[str]:
    port = _free_port()
    command = [opa, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error"]
    process = _start(command, dict(os.environ), f"http://127.0.0.1:{port}/health")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(10)


def wrk(url: str, seconds: int, *, body: Path | None = None, bodies: Path | None = None, once: bool = False) -> Result:
    """wrk at ``CONNECTIONS`` connections for ``seconds``: one body, or cycling through ``bodies`` (``once``: wrk's
    two threads take alternate bodies in order, so that no body is asked twice while there are more bodies than
    requests; ``Result.requests`` says how many were made)."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = [f'wrk.headers["Authorization"] = "Bearer {TOKEN}"', 'wrk.headers["Content-Type"] = "application/json"']
    if body is not None:
        lines += ['wrk.method = "POST"', f'local f = io.open("{body}")', "wrk.body = f:read('*a')", "f:close()"]
    if bodies is not None and once:
        lines += [
            'wrk.method = "POST"',
            "local bodies = {}",
            f'for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end',
            "local ids = 0",
            "function setup(thread) thread:set('id', ids); ids = ids + 1 end",
            "local i = 0",
            "function request() local n = (i * 2 + id) % #bodies + 1; i = i + 1;"
            " return wrk.format(nil, nil, nil, bodies[n]) end",
        ]
    elif bodies is not None:
        lines += [
            'wrk.method = "POST"',
            "local bodies = {}",
            f'for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end',
            "local i = math.random(#bodies)",
            "request = function() i = i % #bodies + 1; return wrk.format(nil, nil, nil, bodies[i]) end",
        ]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    script.unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  warning: {errors.group(1)} non-2xx answers from {url}", file=sys.stderr)
    made = re.search(r"(\d+) requests in", out)
    return Result("", rate, percentile("50"), percentile("99"), requests=int(made.group(1)) if made else 0)


def _questions(folder: Path, heads: list[tuple[str, str]]) -> tuple[Path, Path]:
    one = folder / "one.json"
    one.write_text(json.dumps({"promotion": {"namespace": heads[0][0], "name": heads[0][1]}}))
    many = folder / "many.ndjson"
    shuffled = list(heads)
    random.Random(7).shuffle(shuffled)
    many.write_text("\n".join(json.dumps({"promotion": {"namespace": n, "name": p}}) for n, p in shuffled) + "\n")
    return one, many


# --- decisions ---------------------------------------------------------------------------------------------


def decisions_suite(
    label: str, database_url: str, heads: list[tuple[str, str]], seconds: int, opa: str | None, workers: int,
    *, engine: str = "regopy", peer: bool = True,
) -> list[Result]:  # fmt: skip
    """Ceiling, repeated and fresh decisions on one store, and the OPA peer with the same input."""
    folder = Path(tempfile.mkdtemp(prefix="bench-q-"))
    one, many = _questions(folder, heads)
    results: list[Result] = []
    with opa_server(opa) if engine == "opa" and opa else _nothing() as opa_url:
        extra = {"engine": "opa", "opa_url": opa_url} if opa_url else {}
        with server(database_url, workers, **extra) as base:
            document = httpx.post(f"{base}/v1/decisions", headers=AUTH, content=one.read_text(), timeout=60).json()
            logged = httpx.get(f"{base}/v1/decisions/{document['id']}", headers=AUTH, timeout=60).json()
            ceiling = wrk(f"{base}/health", seconds)
            ceiling.name = f"ceiling: GET /health, same app and server [{label}]"
            post = wrk(f"{base}{CEILING_PATH}", seconds, body=one)
            post.name = f"ceiling: POST, token + decision body and answer only [{label}]"
            probed = wrk(f"{base}{PROBE_CEILING_PATH}", seconds, body=one)
            probed.name = f"ceiling: POST + the store's probe of the Stage [{label}]"
            repeated = wrk(f"{base}/v1/decisions", seconds, body=one)
            repeated.name = f"decisions, repeated: unchanged state [{label}]"
            results += [ceiling, post, probed, repeated]
        # Fresh: every decision reads its Stage's state and evaluates, as after a change (no reuse, no cache).
        with server(database_url, workers, decision_cache_ms="0", **extra) as base:
            fresh = wrk(f"{base}/v1/decisions", seconds, bodies=many)
            fresh.name = f"decisions, fresh: read + evaluate, a different Stage each [{label}]"
            results.append(fresh)
    peer_rate = None
    if opa and peer:
        direct = opa_direct(opa, logged["input"], seconds, folder)
        direct.name = f"peer: OPA direct, 3 built-in policies, same input [{label}]"
        results.append(direct)
        peer_rate = direct.requests_per_s
    for r in results:
        r.ceiling, r.peer, r.post = ceiling.requests_per_s, peer_rate, post.requests_per_s
    return results


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


SLOW_DRAFT = (
    'package policies.flood\n\nimport rego.v1\n\ndeny contains "n" if {\n'
    "\tsome i in numbers.range(1, 1000000000)\n\ti < 0\n}\n"
)


def authoring_flood(database_url: str, heads: list[tuple[str, str]], seconds: int, workers: int) -> list[str]:
    """Fresh decisions (wrk) alone, then the same load while an author floods ``/v1/evaluate`` with runaway
    drafts from 4 clients: authoring has its own workers, queue and deadline, so decisions keep their latency."""
    import threading
    from collections import Counter

    folder = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    _, many = _questions(folder, heads)
    draft = {"input": {"namespace": heads[0][0]}, "draft": {"source": SLOW_DRAFT}}
    counts: Counter[int] = Counter()
    with server(database_url, workers, decision_cache_ms="0", authoring_rate_limit_per_s="0") as base:
        alone = wrk(f"{base}/v1/decisions", seconds, bodies=many)
        stop = threading.Event()

        def flood() -> None:
            with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
                while not stop.is_set():
                    counts[client.post("/v1/evaluate", json=draft).status_code] += 1

        threads = [threading.Thread(target=flood) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1)  # the authoring worker busy and its queue full before measuring
        flooded = wrk(f"{base}/v1/decisions", seconds, bodies=many)
        stop.set()
        for thread in threads:
            thread.join(120)
    return [
        "Decisions while an author floods drafts (SQLite, regopy, fresh decisions, wrk 16 connections):",
        f"  alone:              {alone.requests_per_s:8.0f} req/s  p50 {alone.p50_ms:7.2f} ms  "
        f"p99 {alone.p99_ms:7.2f} ms",
        f"  with a draft flood: {flooded.requests_per_s:8.0f} req/s  p50 {flooded.p50_ms:7.2f} ms  "
        f"p99 {flooded.p99_ms:7.2f} ms  (drafts: {counts[200]} ran to their deadline, {counts[429]} turned away "
        f"with 429, {sum(counts.values()) - counts[200] - counts[429]} other)",
    ]


def opa_direct(opa: str, document: dict, seconds: int, folder: Path) -> Result:
    """The same built-in policies on a real OPA, asked directly with the same input: one request answers all
    three (each under its own parameters), as one decision does."""
    from policy_server.engine import Bundle, PolicyCode
    from policy_server.service.policies import builtin_dir, read_policy_dir

    drafts = {d.name: read_policy_dir(d) for d in sorted(builtin_dir().iterdir()) if (d / "policy.rego").is_file()}
    bundle = Bundle.of([PolicyCode(pid, d.source) for pid, d in drafts.items()])
    rules = [
        f"r{i} := x if {{\n\tx := data.{bundle.entrypoints[pid].replace('/', '.')}"
        f' with input.parameters as input.by_policy["{pid}"]\n}}\n'
        for i, pid in enumerate(drafts)
    ]
    answer = ", ".join(f'"{pid}": r{i}' for i, pid in enumerate(drafts))
    combined = "package bench.all\n\nimport rego.v1\n\n" + "\n".join(rules) + f"\nresult := {{{answer}}}\n"
    with opa_server(opa) as base:
        for module in bundle.modules:
            httpx.put(f"{base}/v1/policies/{module.name}", content=module.source).raise_for_status()
        httpx.put(f"{base}/v1/policies/bench/all.rego", content=combined).raise_for_status()
        by_policy = {pid: d.parameters for pid, d in drafts.items()}
        body = folder / "opa.json"
        body.write_text(json.dumps({"input": {**document, "by_policy": by_policy}}))
        answer = httpx.post(f"{base}/v1/data/bench/all/result", content=body.read_text()).json()
        assert set(answer.get("result", {})) == set(drafts), answer
        return wrk(f"{base}/v1/data/bench/all/result", seconds, body=body)


# --- fresh decisions after a change -------------------------------------------------------------------------


def post_stream(base: str, events: list[str]) -> None:
    """Watch events posted to ``POST /v1/state`` as NDJSON, 500 a request, from 4 clients at once."""
    chunks = [events[i : i + 500] for i in range(0, len(events), 500)]

    async def post_all() -> None:
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=120) as client:

            async def worker() -> None:
                while chunks:
                    response = await client.post(
                        "/v1/state", content="\n".join(chunks.pop(0)), headers={"content-type": "application/x-ndjson"}
                    )
                    response.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(4)))

    asyncio.run(post_all())


def _metric_total(base: str, name: str, labels: str = "") -> float:
    """The sum of a metric's samples (over server processes) whose labels contain ``labels``."""
    text = httpx.get(f"{base}/metrics", timeout=30).text
    pattern = rf"^{re.escape(name)}(\{{[^}}]*\}})? ([\d.e+-]+)$"
    return sum(float(m.group(2)) for m in re.finditer(pattern, text, re.M) if labels in (m.group(1) or ""))


def fresh_after_change(stages: int, workers: int, seconds: int, peer: float | None) -> tuple[list[Result], list[str]]:
    """The first question about each Stage's queue head right after its state changed, as a controller polling
    the gate, the enforcer or an admission webhook asks it. Every Stage's head Promotion is re-posted as a MODIFIED
    watch event (NDJSON, 500 a request, 4 clients: the ingestion rate with precomputation on), the server computes
    each changed Stage's verdicts as the changes are recorded, and then wrk asks each head exactly once."""
    folder = Path(tempfile.mkdtemp(prefix="bench-fresh-"))
    heads = fill_sqlite(folder / "store.db", 2 * stages, stages)
    template = json.loads((ROOT / "bench" / "promotion.json").read_text())
    events = []
    for i, (namespace, name) in enumerate(heads):
        stage = name.split(".", 1)[0]
        obj = json.loads(json.dumps(template))
        obj["metadata"].update(name=name, namespace=namespace, resourceVersion=str(5_000_000 + i),
                               uid=str(uuid.UUID(int=i)), annotations={"bench/changed": "1"})  # fmt: skip
        obj["metadata"]["labels"]["kargo.akuity.io/stage"] = stage
        obj["metadata"]["ownerReferences"][0]["name"] = stage
        obj["spec"].update(stage=stage, freight="f0ea4d1b")
        obj["status"] = {"phase": "Pending"}
        events.append(json.dumps({"type": "MODIFIED", "object": obj}))
    bodies = folder / "heads.ndjson"
    bodies.write_text("\n".join(json.dumps({"promotion": {"namespace": n, "name": p}}) for n, p in heads) + "\n")
    lines: list[str] = []
    with server(f"sqlite+aiosqlite:///{folder / 'store.db'}", workers) as base:
        started = time.perf_counter()
        post_stream(base, events)
        recorded = time.perf_counter() - started
        while _metric_total(base, "policy_server_precompute_backlog") > 0:
            time.sleep(0.05)
        settled = time.perf_counter() - started
        computed = _metric_total(base, "policy_server_precompute_total", 'result="computed"')
        lines.append(
            f"ingestion with precomputation: {len(events):,} Promotion changes over {stages:,} Stages recorded at "
            f"{len(events) / recorded:,.0f}/s; their {computed:,.0f} verdicts computed {settled:.1f} s after the "
            f"first change ({computed / settled:,.0f}/s)"
        )
        used_before = _metric_total(base, "policy_server_precomputed_verdicts_total", 'result="used"')
        result = wrk(f"{base}/v1/decisions", seconds, bodies=bodies, once=True)
        used = _metric_total(base, "policy_server_precomputed_verdicts_total", 'result="used"') - used_before
        result.name = f"decisions, fresh after a change: precomputed [SQLite, regopy, {stages:,} Stages]"
        result.peer = peer
        lines.append(
            f"fresh after a change: {result.requests:,} questions about {len(heads):,} queue heads (none asked twice "
            f"while fewer); {used:,.0f} answered by a precomputed verdict"
        )
    shutil.rmtree(folder, ignore_errors=True)
    return [result], lines


# --- ingestion ---------------------------------------------------------------------------------------------


def watch_stream(count: int, offset: int) -> list[str]:
    """``count`` watch events of real-shaped Promotions (ADDED, then MODIFIED through their phases)."""
    template = json.loads((ROOT / "bench" / "promotion.json").read_text())
    lines = []
    phases = ["Pending", "Running", "Succeeded"]
    objects = max(1, count // 3)
    for i in range(count):
        n, step = offset + i % objects, i // objects
        obj = json.loads(json.dumps(template))
        stage = f"stage-{n % 50}"
        obj["metadata"].update(name=f"{stage}.{_ulid(1785542940000 + n, n)}.759376c", namespace="ingest",
                               resourceVersion=str(1_000_000 + offset * 10 + i), uid=str(uuid.UUID(int=n)))  # fmt: skip
        obj["metadata"]["labels"]["kargo.akuity.io/stage"] = stage
        obj["spec"]["stage"] = stage
        obj["status"] = {"phase": phases[min(step, 2)]}
        lines.append(json.dumps({"type": "ADDED" if step == 0 else "MODIFIED", "object": obj}))
    return lines


def ingestion(database_url: str, workers: int, count: int, *, precompute: bool = True) -> list[str]:
    """Watch-stream ingestion over HTTP and through the CLI; ``precompute`` off is the baseline of the same run
    (the product computes verdicts ahead when state changes)."""
    out = []
    label = "with precomputation" if precompute else "precomputation off (baseline)"
    with server(database_url, workers, precompute=str(precompute).lower()) as base:
        lines = watch_stream(count, 0)
        started = time.perf_counter()
        post_stream(base, lines)
        elapsed = time.perf_counter() - started
        rate = count / elapsed
        out.append(f"ingestion, {label}: POST /v1/state, NDJSON watch stream, 500 events/request, 4 clients: "
                   f"{rate:,.0f}/s")  # fmt: skip
        stream = Path(tempfile.mkstemp(suffix=".ndjson")[1])
        stream.write_text("\n".join(watch_stream(count, count)) + "\n")
        command = [str(Path(sys.executable).parent / "policy-server"), "ingest", "--url", base, "--token", TOKEN,
                   "--batch", "500", str(stream)]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"policy-server ingest failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        elapsed = time.perf_counter() - started
        rate = count / elapsed
        out.append(f"ingestion, {label}: policy-server ingest --batch 500 (a CLI process, same stream shape): "
                   f"{rate:,.0f}/s")  # fmt: skip
        stream.unlink()
    return out


def ingestion_side_by_side(workers: int, count: int) -> list[str]:
    """Ingestion as the product runs it (verdicts computed ahead) and with that off, each on a fresh store."""
    out = []
    for precompute in (True, False):
        folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        out += ingestion(f"sqlite+aiosqlite:///{folder / 'store.db'}", workers, count, precompute=precompute)
        shutil.rmtree(folder, ignore_errors=True)
    return out


# --- the decision log --------------------------------------------------------------------------------------


def decision_log(workers: int, logged: int, seconds: int) -> list[str]:
    """Bytes per logged decision, and browsing latency with filters once ``logged`` decisions are kept."""
    folder = Path(tempfile.mkdtemp(prefix="bench-log-"))
    path = folder / "store.db"
    heads = fill_sqlite(path, 1000, 100)
    url = f"sqlite+aiosqlite:///{path}"
    namespace, head = heads[0]
    with server(url, workers) as base:
        allowed = httpx.post(f"{base}/v1/decisions", headers=AUTH, timeout=60,
                             json={"promotion": {"namespace": namespace, "name": head}}).json()  # fmt: skip
        denied = httpx.post(f"{base}/v1/decisions", headers=AUTH, timeout=60,
                            json={"stage": {"namespace": namespace, "name": head.split(".")[0]},
                                  "freight": "f0ea4d1b"}).json()  # fmt: skip
    assert allowed["allow"] and not denied["allow"], (allowed, denied)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    columns = [d[0] for d in conn.execute("SELECT * FROM decisions LIMIT 0").description]
    templates = []
    for sample in (allowed, denied):
        row = conn.execute("SELECT * FROM decisions WHERE id = ?", (sample["id"],)).fetchone()
        reasons = conn.execute("SELECT * FROM decision_reasons WHERE decision_id = ?", (sample["id"],)).fetchall()
        stored = conn.execute("SELECT * FROM decision_inputs WHERE decision_id = ?", (sample["id"],)).fetchone()
        templates.append((dict(zip(columns, row, strict=True)), reasons, stored))
    before = path.stat().st_size
    base_ms = int(T0.timestamp() * 1000)
    with conn:
        for start in range(0, logged, 20_000):
            batch, reason_rows, input_rows = [], [], []
            for n in range(start, min(logged, start + 20_000)):
                template, reasons, stored = templates[n % 2]
                values = dict(template)
                namespace, promotion = heads[n % len(heads)]
                at = T0 + timedelta(seconds=n * 6)
                values.update(id=_ulid(base_ms + n * 6000, n).upper()[:26], namespace=namespace,
                              promotion=promotion if values["promotion"] else None, stage=promotion.split(".")[0],
                              fold_key=f"{n:064d}", evaluated_at=_db_time(at), last_at=_db_time(at))  # fmt: skip
                batch.append(tuple(values[c] for c in columns))
                reason_rows += [(values["id"], *r[1:]) for r in reasons]
                input_rows.append((values["id"], *stored[1:]))
            conn.executemany(f"INSERT INTO decisions VALUES ({', '.join('?' * len(columns))})", batch)
            conn.executemany("INSERT INTO decision_inputs VALUES (?, ?, ?)", input_rows)
            conn.executemany("INSERT INTO decision_reasons VALUES (?, ?, ?, ?, ?)", reason_rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    per_decision = (path.stat().st_size - before) / logged
    out = [f"decision log: {per_decision:,.0f} bytes per logged decision (row, compressed input, reasons, indexes; "
           f"answers are {len(json.dumps(allowed))}-{len(json.dumps(denied))} bytes)"]  # fmt: skip
    namespace, promotion = heads[4]  # an even row: the allowed template, which names its Promotion
    queries = {
        "namespace": f"namespace={namespace}&limit=50",
        "namespace+stage": f"namespace={namespace}&stage={promotion.split('.')[0]}&limit=50",
        "promotion": f"namespace={namespace}&promotion={promotion}&limit=50",
        "code": f"code={denied['reasons'][0]['code']}&limit=50",
        "allow=false": "allow=false&limit=50",
        "since+until (12 h)": f"since={quote((T0 + timedelta(hours=12)).isoformat())}"
        f"&until={quote((T0 + timedelta(hours=24)).isoformat())}&limit=50",
    }
    # The generated decisions are months old: keep them from the retention pruner.
    with server(url, workers, decision_retention_hours="1000000") as base:
        # Impact analysis: the active block-while-verifying revision replayed on the log (authoring workers).
        replayed = min(logged, 100_000)
        started = time.perf_counter()
        impact = httpx.post(
            f"{base}/v1/policies/block-while-verifying/impact", headers=AUTH, timeout=400,
            json={"revision": 1, "since": (T0 - timedelta(days=1)).isoformat(), "max_decisions": replayed,
                  "timeout_s": 300},
        )  # fmt: skip
        impact.raise_for_status()
        report = impact.json()
        elapsed = time.perf_counter() - started
        out.append(
            f"impact replay: {report['scanned']['decisions'] / elapsed:,.0f} decisions/s "
            f"({report['scanned']['decisions']:,} of {logged:,} logged replayed in {elapsed:.1f} s, "
            f"{report['flips']} flips, complete: {report['complete']})"
        )
        for name, query in queries.items():
            probe = httpx.get(f"{base}/v1/decisions?{query}", headers=AUTH, timeout=60)
            probe.raise_for_status()
            result = wrk(f"{base}/v1/decisions?{query}", seconds)
            items = len(probe.json()["items"])
            out.append(f"GET /v1/decisions?{name} at {logged:,} logged: {result.requests_per_s:,.0f} req/s, "
                       f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms ({items} items)")  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    return out


# --- memory ------------------------------------------------------------------------------------------------


def _tree_rss(pid: int) -> tuple[int, int]:
    """Resident bytes of a process and its descendants: (server processes, Rego workers)."""
    service, rego, stack = 0, 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
            if b"engine._worker" in Path(f"/proc/{current}/cmdline").read_bytes():
                rego += rss
            else:
                service += rss
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack += [int(c) for c in children]
        except (OSError, AttributeError):
            continue
    return service, rego


def memory(workers: int, decisions: int) -> list[str]:
    """Resident size of the service (with its Rego workers) over ``decisions`` decisions of many questions."""
    folder = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    heads = fill_sqlite(folder / "store.db", 100_000, 10_000)
    _, many = _questions(folder, heads)
    url = f"sqlite+aiosqlite:///{folder / 'store.db'}"
    port = _free_port()
    env = {**os.environ, "POLICY_SERVER_DATABASE_URL": url, "POLICY_SERVER_PORT": str(port),
           "POLICY_SERVER_BOOTSTRAP_TOKEN": TOKEN, "POLICY_SERVER_RATE_LIMIT_PER_S": "0",
           "POLICY_SERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
    command = [str(Path(sys.executable).parent / "policy-server"), "run", "--workers", str(workers)]
    process = _start(command, env, f"http://127.0.0.1:{port}/ready")
    samples: list[tuple[int, int]] = []
    done = 0
    try:
        # Warm-up: every question asked once, so the bounded caches (inputs and verdicts, 10k entries each)
        # are full before the first sample; what grows after that is growth.
        while done < len(heads):
            warm = wrk(f"http://127.0.0.1:{port}/v1/decisions", 5, bodies=many)
            done += int(warm.requests_per_s * 5)
        samples.append((done, _tree_rss(process.pid)))
        while done < decisions:
            chunk = wrk(f"http://127.0.0.1:{port}/v1/decisions", 20, bodies=many)
            done += int(chunk.requests_per_s * 20)
            samples.append((done, _tree_rss(process.pid)))
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        found = re.search(r"^policy_server_engine_worker_recycles_total(?:\{[^}]*\})? ([\d.e+]+)", metrics, re.M)
        recycles = float(found.group(1)) if found else 0.0
    finally:
        process.terminate()
        process.wait(20)
        shutil.rmtree(folder, ignore_errors=True)
    total = [(n, a + b) for n, (a, b) in samples]
    first, last = total[0][1], total[-1][1]
    peak = max(s for _, s in total)
    trace = ", ".join(f"{n // 1000}k: {s / 2**20:.0f}" for n, s in total[:: max(1, len(total) // 8)])
    service = [a for _, (a, _) in samples]
    rego = [b for _, (_, b) in samples]
    return [
        f"memory: service + Rego workers {first / 2**20:.0f} MiB after warm-up, {last / 2**20:.0f} MiB after "
        f"{done:,} decisions ({(last - first) / first:+.1%}; peak {peak / 2**20:.0f} MiB). MiB by decisions: {trace}",
        f"memory: server processes {service[0] / 2**20:.0f} → {service[-1] / 2**20:.0f} MiB "
        f"({(service[-1] - service[0]) / service[0]:+.1%}, range {min(service) / 2**20:.0f}-"
        f"{max(service) / 2**20:.0f}); "
        f"Rego workers {rego[0] / 2**20:.0f} → {rego[-1] / 2**20:.0f} MiB (range {min(rego) / 2**20:.0f}-"
        f"{max(rego) / 2**20:.0f}; recycled {recycles:.0f} times at POLICY_SERVER_ENGINE_RECYCLE_MB)",
    ]


# --- main --------------------------------------------------------------------------------------------------


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    name = f"bench_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(user=url.username, password=url.password, host=url.host, port=url.port or 5432,
                                     database=url.database)  # fmt: skip
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def stores(postgres: str, seconds: int, opa: str | None, workers: int) -> list[str]:
    """The decision rows on SQLite and on PostgreSQL in one run, with PostgreSQL's share of SQLite's rate."""
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        heads = fill_sqlite(folder / "store.db", 1_000, 10)
        sqlite = decisions_suite("SQLite, regopy, 1,000", f"sqlite+aiosqlite:///{folder / 'store.db'}", heads,
                                 seconds, opa, workers)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    with postgres_database(postgres) as url:
        pg = decisions_suite("PostgreSQL, regopy, 1,000", url, fill_postgres(url, 1_000, 10), seconds, opa, workers)
    lines = [f"{r.name:<80} {r.requests_per_s:>8.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f}" for r in sqlite + pg]
    for s_row, p_row in zip(sqlite, pg, strict=True):
        if s_row.requests_per_s:
            share = p_row.requests_per_s / s_row.requests_per_s
            lines.append(f"PostgreSQL / SQLite, {s_row.name.split(' [')[0]}: {share:.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="1k, 100k, 1M promotions; 1M logged; 200k for RSS")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--workers", type=int, default=2, help="policy-server run --workers (default 2: one a core)")
    parser.add_argument("--opa", default=os.environ.get("POLICY_SERVER_TEST_OPA") or shutil.which("opa")
                        or str(Path.home() / "go/bin/opa"))  # fmt: skip
    parser.add_argument("--postgres", default=os.environ.get("POLICY_SERVER_TEST_POSTGRES_URL"))
    parser.add_argument("--memory-decisions", type=int, default=None,
                        help="decisions while RSS is sampled (20k; --full 200k)")  # fmt: skip
    parser.add_argument("--fresh-stages", type=int, default=None,
                        help="Stages changed for the fresh-after-a-change row (20k; --full 50k): more than the "
                             "questions asked, so that none is asked twice")  # fmt: skip
    parser.add_argument("--only", choices=["flood", "stores", "cluster", "fresh", "ingest"], default=None,
                        help="flood: only decisions alone vs. while an author floods drafts (SQLite, 1k); "
                             "fresh: only the decision rows at 1k and fresh decisions after a change; "
                             "stores: only the decision rows on SQLite and PostgreSQL (1k), side by side; "
                             "cluster: only the real kube-apiserver measurements (bench/cluster.py); "
                             "ingest: only ingestion, with and without verdicts computed ahead")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    opa = args.opa if args.opa and Path(args.opa).is_file() else None
    sizes, seconds = ([1_000, 100_000, 1_000_000], 15) if args.full else ([1_000], 5)
    if args.only == "flood":
        folder = Path(tempfile.mkdtemp(prefix="bench-"))
        heads = fill_sqlite(folder / "store.db", 1_000, 10)
        print("\n".join(authoring_flood(f"sqlite+aiosqlite:///{folder / 'store.db'}", heads, seconds, args.workers)))
        shutil.rmtree(folder, ignore_errors=True)
        return
    if args.only == "stores":
        if not args.postgres:
            sys.exit("--only stores needs PostgreSQL: POLICY_SERVER_TEST_POSTGRES_URL or --postgres")
        print("\n".join(stores(args.postgres, seconds, opa, args.workers)))
        return
    if args.only == "cluster":
        print("\n".join(cluster_suite(server, wrk, AUTH, args.workers, args.full, seconds)))
        return
    if args.only == "ingest":
        print("\n".join(ingestion_side_by_side(args.workers, 30_000 if args.full else 6_000)))
        return
    logged, decisions = (1_000_000, 200_000) if args.full else (20_000, 20_000)
    decisions = args.memory_decisions or decisions
    report = Report()
    for size in sizes:
        folder = Path(tempfile.mkdtemp(prefix="bench-"))
        started = time.perf_counter()
        heads = fill_sqlite(folder / "store.db", size, max(10, min(10_000, size // 100)))
        print(f"store: {size:,} promotions over {len(heads):,} stages in {time.perf_counter() - started:.1f} s")
        url = f"sqlite+aiosqlite:///{folder / 'store.db'}"
        report.decisions += decisions_suite(f"SQLite, regopy, {size:,}", url, heads, seconds, opa, args.workers)
        if size == sizes[0]:
            peer = next((r.peer for r in report.decisions if r.peer), None)
            count = args.fresh_stages or (50_000 if args.full else 20_000)
            fresh, lines = fresh_after_change(count, args.workers, seconds, peer)
            for r in fresh:
                r.ceiling, r.post = report.decisions[0].ceiling, report.decisions[0].post
            report.decisions += fresh
            report.other += lines
            if args.only != "fresh":
                report.other += authoring_flood(url, heads, seconds, args.workers)
        if size == sizes[0] and opa and args.only != "fresh":
            group = decisions_suite(
                f"SQLite, OPA engine, {size:,}", url, heads, seconds, opa, args.workers, engine="opa", peer=False
            )
            peer = next(r.peer for r in report.decisions if r.name.startswith("peer: OPA direct"))
            for r in group:
                r.peer = peer
            report.decisions += group
        shutil.rmtree(folder, ignore_errors=True)
        if args.only == "fresh":
            break
    if args.postgres and args.only != "fresh":
        with postgres_database(args.postgres) as url:
            heads = fill_postgres(url, 1_000, 10)
            report.decisions += decisions_suite("PostgreSQL, regopy, 1,000", url, heads, seconds, opa, args.workers)
    if args.only != "fresh":
        report.other += ingestion_side_by_side(args.workers, 30_000 if args.full else 6_000)
        report.other += decision_log(args.workers, logged, seconds)
        fresh = next((r for r in report.decisions if r.name.startswith("decisions, fresh")), None)
        replay = next((line for line in report.other if line.startswith("impact replay:")), None)
        if fresh and replay:
            rate = float(replay.split()[2].replace(",", ""))
            report.other.append(f"impact replay / fresh decisions of this run: {rate / fresh.requests_per_s:.2f} "
                                f"({rate:,.0f} vs {fresh.requests_per_s:,.0f}/s)")  # fmt: skip
        report.other += memory(args.workers, decisions)
        report.other += cluster_suite(server, wrk, AUTH, args.workers, args.full, seconds)

    header = f"{'measurement':<80} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'/ceiling':>8} {'/POST':>5} {'/OPA':>5}"
    lines = [header, "-" * len(header)]
    for r in report.decisions:
        vs_ceiling = f"{r.requests_per_s / r.ceiling:.2f}" if r.ceiling else "-"
        vs_peer = f"{r.requests_per_s / r.peer:.2f}" if r.peer else "-"
        vs_post = f"{r.requests_per_s / r.post:.2f}" if r.post else "-"
        lines.append(
            f"{r.name:<80} {r.requests_per_s:>8.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {vs_ceiling:>8} {vs_post:>5} "
            f"{vs_peer:>5}"
        )
    text = "\n".join(lines) + "\n\n" + "\n".join(report.other)
    print(text)
    if args.write:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), platform.machine())  # fmt: skip
        machine = f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
        command = "python bench/run.py" + (" --full" if args.full else "") + " --write"
        results = ROOT / "bench" / "RESULTS.md"
        previous = results.read_text() if results.exists() else ""
        notes = previous.split("<!-- notes -->", 1)[1] if "<!-- notes -->" in previous else "\n"
        results.write_text(
            f"# Benchmark results\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine}; `{command}` "
            f"(policy-server run --workers {args.workers}; wrk, {CONNECTIONS} connections, on the same machine; "
            "compare within one run).\n\n```\n" + text + "\n```\n\n<!-- notes -->" + notes
        )


if __name__ == "__main__":
    main()
