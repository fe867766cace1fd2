"""Decision benchmarks, side by side in one run: the app's own trivial endpoint (the ceiling), policy-server's
decisions (repeated and fresh), and a real OPA answering the same question with the same input (the peer).

    python bench/run.py            # quick: 1k recorded Promotions, 5 s per measurement
    python bench/run.py --full     # 1k, 100k and 1M recorded Promotions, 15 s per measurement

Load comes from wrk (Debian package) at 16 connections on this machine; results go to stdout and, with
--write, to bench/RESULTS.md. Compare numbers only within one run: the machine is shared and noisy.
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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "pst_bench-admin-token"
CONNECTIONS = 16


@dataclass
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ulid(ms: int, n: int) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value, out = ms, []
    for _ in range(10):
        out.append(alphabet[value % 32])
        value //= 32
    return "".join(reversed(out)) + f"{n:016d}"


async def fill_store(url: str, promotions: int, stages: int) -> list[tuple[str, str]]:
    """Record ``promotions`` Promotions across ``stages`` Stages straight into the store (not through HTTP).

    Each Stage has verification, a Succeeded history and one Pending Promotion at the head of its queue;
    returns (namespace, promotion) of those heads, the questions the benchmark asks.
    """
    from sqlalchemy import insert

    from policy_server.kargo import Kind, queue_key
    from policy_server.store import Database, upgrade
    from policy_server.store._state import TABLES

    db = Database(url)
    await upgrade(db)
    t0 = datetime(2026, 8, 1, tzinfo=UTC)
    per_stage = max(2, promotions // stages)
    heads: list[tuple[str, str]] = []
    stage_rows, promotion_rows = [], []
    for s in range(stages):
        namespace, stage = f"project-{s % 100}", f"stage-{s}"
        stage_rows.append({
            "namespace": namespace, "name": stage, "uid": None, "resource_version": "1", "deleted": False,
            "created_at": t0, "recorded_at": t0, "object": json.dumps({"kind": "Stage", "metadata": {"name": stage}}),
            "has_verification": True, "health_status": "Healthy", "current_promotion": None,
            "last_promotion": None, "current_freight_collection": "c",
        })  # fmt: skip
        for i in range(per_stage):
            created = t0 + timedelta(minutes=i)
            name = f"{stage}.{_ulid(int(created.timestamp() * 1000), s)}.abcdef0"
            pending = i == per_stage - 1
            promotion_rows.append({
                "namespace": namespace, "name": name, "uid": None, "resource_version": str(i + 2), "deleted": False,
                "created_at": created, "recorded_at": created, "object": "{}", "stage": stage, "freight": "f",
                "phase": "Pending" if pending else "Succeeded", "terminal": not pending, "queue_key": queue_key(name),
                "freight_collection": None if pending else "c", "started_at": None if pending else created,
                "finished_at": None if pending else created + timedelta(seconds=30), "abort_requested": False,
            })  # fmt: skip
            if pending:
                heads.append((namespace, name))
        if len(promotion_rows) >= 20_000 or s == stages - 1:
            async with db.write() as conn:
                await conn.execute(insert(TABLES[Kind.STAGE]), stage_rows)
                await conn.execute(insert(TABLES[Kind.PROMOTION]), promotion_rows)
            stage_rows, promotion_rows = [], []
    await db.dispose()
    return heads


def _wrk(url: str, seconds: int, body_file: Path | None = None, bodies: Path | None = None) -> Result | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = [f'wrk.headers["Authorization"] = "Bearer {TOKEN}"', 'wrk.headers["Content-Type"] = "application/json"']
    if body_file is not None:
        lines += ['wrk.method = "POST"', f'local f = io.open("{body_file}")', "wrk.body = f:read('*a')", "f:close()"]
    if bodies is not None:
        lines += [
            'wrk.method = "POST"',
            "local bodies = {}",
            f'for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end',
            "local i = 0",
            "request = function() i = i % #bodies + 1; return wrk.format(nil, nil, nil, bodies[i]) end",
        ]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script), url],
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
        print(f"  warning: {errors.group(1)} non-2xx answers", file=sys.stderr)
    return Result("", rate, percentile("50"), percentile("99"))


def _start(command: list[str], env: dict[str, str], ready: str) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready, timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command[0]} did not start")


def run_size(promotions: int, seconds: int, opa: str | None) -> list[Result]:
    stages = max(10, min(10_000, promotions // 10))
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    url = f"sqlite+aiosqlite:///{folder / 'store.db'}"
    started = time.perf_counter()
    heads = asyncio.run(fill_store(url, promotions, stages))
    print(f"store: {promotions} promotions over {stages} stages in {time.perf_counter() - started:.1f} s")
    port = _free_port()
    env = {**os.environ, "POLICY_SERVER_DATABASE_URL": url, "POLICY_SERVER_PORT": str(port),
           "POLICY_SERVER_BOOTSTRAP_TOKEN": TOKEN, "POLICY_SERVER_RATE_LIMIT_PER_S": "0",
           "POLICY_SERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
    server = _start([str(Path(sys.executable).parent / "policy-server"), "run"], env, f"http://127.0.0.1:{port}/ready")
    base = f"http://127.0.0.1:{port}"
    results: list[Result] = []
    try:
        namespace, name = heads[0]
        one = folder / "one.json"
        one.write_text(json.dumps({"promotion": {"namespace": namespace, "name": name}}))
        many = folder / "many.ndjson"
        random.Random(7).shuffle(heads)
        many.write_text("\n".join(json.dumps({"promotion": {"namespace": n, "name": p}}) for n, p in heads) + "\n")
        for label, result in (
            ("ceiling: GET /health (same app, same server)", _wrk(f"{base}/health", seconds)),
            ("decisions, repeated (unchanged state)", _wrk(f"{base}/v1/decisions", seconds, body_file=one)),
            ("decisions, fresh (a different Stage each time)", _wrk(f"{base}/v1/decisions", seconds, bodies=many)),
        ):
            if result is not None:
                result.name = f"{label} [{promotions} promotions]"
                results.append(result)
        if opa:
            document = httpx.post(f"{base}/v1/decisions", headers={"authorization": f"Bearer {TOKEN}"},
                                  content=one.read_text(), timeout=30).json()["id"]  # fmt: skip
            logged = httpx.get(f"{base}/v1/decisions/{document}", headers={"authorization": f"Bearer {TOKEN}"}).json()
            results += _opa_peer(opa, logged["input"], seconds, folder, promotions)
    finally:
        server.terminate()
        server.wait(10)
    return results


def _opa_peer(opa: str, document: dict, seconds: int, folder: Path, promotions: int) -> list[Result]:
    """The same built-in policies on a real OPA, asked directly with the same input (one policy per request)."""
    from policy_server.engine import Bundle, PolicyCode
    from policy_server.service.policies import builtin_dir, read_policy_dir

    port = _free_port()
    process = _start([opa, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error"], dict(os.environ),
                     f"http://127.0.0.1:{port}/health")  # fmt: skip
    try:
        drafts = {d.name: read_policy_dir(d) for d in sorted(builtin_dir().iterdir()) if (d / "policy.rego").is_file()}
        bundle = Bundle.of([PolicyCode(pid, d.source) for pid, d in drafts.items()])
        for module in bundle.modules:
            httpx.put(f"http://127.0.0.1:{port}/v1/policies/{module.name}", content=module.source).raise_for_status()
        entry = bundle.entrypoints["block-while-verifying"]
        body = folder / "opa.json"
        body.write_text(json.dumps({"input": {**document, "parameters": drafts["block-while-verifying"].parameters}}))
        result = _wrk(f"http://127.0.0.1:{port}/v1/data/{entry}", seconds, body_file=body)
        if result is None:
            return []
        result.name = f"peer: OPA, one policy, same input, direct [{promotions} promotions]"
        return [result]
    finally:
        process.kill()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="1k, 100k and 1M promotions, longer runs")
    parser.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    parser.add_argument("--opa", default=os.environ.get("POLICY_SERVER_TEST_OPA") or shutil.which("opa")
                        or str(Path.home() / "go/bin/opa"))  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    opa = args.opa if args.opa and Path(args.opa).is_file() else None
    sizes, seconds = ([1_000, 100_000, 1_000_000], 15) if args.full else ([1_000], 5)
    results: list[Result] = []
    for size in sizes:
        results += run_size(size, seconds, opa)
    ceiling = next((r.requests_per_s for r in results if r.name.startswith("ceiling")), None)
    peer = next((r.requests_per_s for r in results if r.name.startswith("peer")), None)
    header = f"{'measurement':<75} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'/ceiling':>9} {'/OPA':>6}"
    lines = [header, "-" * len(header)]
    for r in results:
        vs_ceiling = f"{r.requests_per_s / ceiling:.2f}" if ceiling else "-"
        vs_peer = f"{r.requests_per_s / peer:.2f}" if peer else "-"
        lines.append(
            f"{r.name:<75} {r.requests_per_s:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {vs_ceiling:>9} {vs_peer:>6}"
        )
    print("\n".join(lines))
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        command = "python bench/run.py" + (" --full" if args.full else "") + " --write"
        (ROOT / "bench" / "RESULTS.md").write_text(
            f"# Benchmark results\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}; `{command}`\n"
            f"(wrk, {CONNECTIONS} connections, load generator on the same machine; compare within one run).\n\n"
            "```\n" + "\n".join(lines) + "\n```\n"
        )


if __name__ == "__main__":
    main()
