"""`policy-server policies impact`: a platform engineer edits a policy folder and sees, before activating it, which
past Promotions it would have decided differently — against a running server, and against the database."""

from __future__ import annotations

import shutil

import httpx

from tests.conftest import ADMIN, ROOT
from tests.e2e.conftest import cli
from tests.integration.conftest import AR_E, PROD_P6

STREAM = ROOT / "examples" / "kargo-demo"


def test_the_cli_shows_the_flips_of_an_edited_policy(server_factory, tmp_path):
    data = tmp_path / "data"
    server = server_factory({"POLICY_SERVER_DATA_DIR": str(data)})
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        assert http.post("/v1/state", content=(STREAM / "list-kargo-demo.json").read_bytes()).status_code == 200
        held = http.post("/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": PROD_P6}}).json()
        assert held["allow"] is False  # block-while-verifying: AR-e is Running

    # The engineer's edit: block-while-verifying stops holding on a running verification.
    folder = tmp_path / "block-while-verifying"
    shutil.copytree(ROOT / "policies" / "block-while-verifying", folder)
    policy = folder / "policy.rego"
    policy.write_text(policy.read_text().replace('run.effective_phase in {"", "Pending", "Running"}', "false"))

    remote = cli("policies", "impact", str(folder), "--url", server.url)
    assert remote.returncode == 0, remote.stderr.decode()
    out = remote.stdout.decode()
    assert "deny → allow  1" in out and "allow → deny  0" in out
    assert "kargo-demo/prod" in out and held["id"] in out
    assert AR_E not in out  # the table names decisions, not runs

    as_json = cli("policies", "impact", str(folder), "--url", server.url, "--json")
    assert '"deny_to_allow"' in as_json.stdout.decode()

    server.stop()
    local = cli("policies", "impact", str(folder), env={"POLICY_SERVER_DATA_DIR": str(data)})
    assert local.returncode == 0, local.stderr.decode()
    assert "deny → allow  1" in local.stdout.decode()

    broken = tmp_path / "broken.rego"
    broken.write_text("package policies.block_while_verifying\n\ndeny contains\n")
    refused = cli("policies", "impact", str(broken), "--policy", "block-while-verifying",
                  env={"POLICY_SERVER_DATA_DIR": str(data)})  # fmt: skip
    assert refused.returncode == 1 and "rego_parse_error" in refused.stderr.decode()
