"""Metrics move as documented, and decision log lines are JSON with the decision id and no input."""

from __future__ import annotations

import json
import logging
import re

from tests.integration.conftest import NDJSON, PROD_P6, post, settled, watch_lines


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        got = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if got == wanted:
            return float(match.group(3))
    return 0.0


async def scrape(client) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_move_with_decisions_ingestion_and_failures(client, fixtures_dir):
    before = await scrape(client)
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    await post(client, "\n".join(watch_lines(fixtures_dir)[:7]), NDJSON)
    await settled(client)  # the verdicts of the changed Stages' queues are computed as the changes are recorded
    recorded = await scrape(client)
    body = {"promotion": {"namespace": "kargo-demo", "name": PROD_P6}}
    await client.post("/v1/decisions", json=body)  # answered from the verdict computed when the state changed
    await client.post("/v1/decisions", json=body)  # its input and verdict kept from the first
    slow = {
        "source": 'package policies.slow\n\nimport rego.v1\n\ndeny contains "x" if regex.match(`^(a+)+$`, input.s)\n'
    }
    doc = {"namespace": "kargo-demo", "s": "a" * 40 + "!", "queue": [], "promotions": {}}
    await client.post("/v1/evaluate", json={"input": doc, "draft": slow})
    after = await scrape(client)

    def moved(name: str, since: str = "recorded", **labels: str) -> float:
        start = recorded if since == "recorded" else before
        return metric(after, name, **labels) - metric(start, name, **labels)

    assert moved("policy_server_decisions_total", outcome="deny") == 2
    assert (
        moved(
            "policy_server_decision_reasons_total",
            kind="deny",
            policy="cancel-queue-on-failure",
            code="verification_failed",
        )
        == 2
    )
    assert moved("policy_server_precompute_total", since="start", result="computed") >= 2  # P6 and P7 at least
    assert moved("policy_server_precomputed_verdicts_total", result="used") == 1  # then kept: the second reuses it
    assert moved("policy_server_input_reuse_total", result="hit") == 1
    assert moved("policy_server_verdict_cache_total", result="hit") == 2
    assert moved("policy_server_decision_duration_seconds_count") == 2
    assert moved("policy_server_evaluation_duration_seconds_count", engine="regopy") == 0  # nothing evaluated again
    assert moved("policy_server_ingested_objects_total", since="start", kind="Promotion", result="applied") == 14
    assert moved("policy_server_ingested_objects_total", since="start", kind="Warehouse", result="skipped") == 1
    assert moved("policy_server_ingested_objects_total", since="start", kind="AnalysisRun", result="applied") == 6
    assert moved("policy_server_evaluation_failures_total", code="evaluation_timeout") == 1
    assert moved("policy_server_engine_worker_restarts_total") == 1
    assert metric(after, "policy_server_decision_log_backlog") == 0


def test_decision_log_lines_are_json_with_the_decision_id_and_no_input(caplog):
    from policy_server.logs import JsonFormatter

    record = logging.LogRecord(
        "policy_server.decisions", logging.INFO, __file__, 1, "decision %s deny", ("01ABC",), None
    )
    record.decision_id = "01ABC"
    record.input = {"secret": "do not log"}
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert parsed["decision_id"] == "01ABC" and parsed["message"] == "decision 01ABC deny"
    assert "secret" not in line and parsed["level"] == "INFO"
