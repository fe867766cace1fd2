"""The CLI says what went wrong and exits with a code a script can use; never a Python traceback."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import cli, free_port

DOWN = {"POLICY_SERVER_DATABASE_URL": f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/nothing"}


@pytest.mark.parametrize(
    "args",
    [
        ("db", "current"),
        ("db", "upgrade"),
        ("tokens", "list"),
        ("tokens", "create", "--name", "ops", "--role", "admin"),
        ("tokens", "revoke", "ops"),
    ],
)
def test_an_unreachable_database_is_one_line_and_exit_3(args):
    result = cli(*args, env=DOWN)
    stderr = result.stderr.decode()
    assert result.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("Error: the database is unavailable")


def test_an_unreachable_server_is_exit_3_and_names_it():
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("ingest", "--url", url, "-", stdin=b'{"kind": "List", "apiVersion": "v1", "items": []}')
    stderr = result.stderr.decode()
    assert result.returncode == 3 and "Traceback" not in stderr
    assert f"cannot reach {url}/v1/state" in stderr


def test_a_bad_setting_is_a_usage_error_naming_the_variable():
    result = cli("db", "current", env={"POLICY_SERVER_ENGINE": "rego"})
    assert result.returncode == 2 and "Traceback" not in result.stderr.decode()
    assert "POLICY_SERVER_ENGINE must be one of regopy, opa" in result.stderr.decode()


def test_malformed_input_lists_each_problem_by_item_and_line(tmp_path):
    body = (
        b'{"kind": "Stage"}\n{"kind": "Stage", "apiVersion": "kargo.akuity.io/v1alpha1", "metadata": {"name": "a"}}\n'
    )
    result = cli("ingest", "-", env={"POLICY_SERVER_DATA_DIR": str(tmp_path)}, stdin=body)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr.decode()
    assert lines[0].startswith("Error: line 1: apiVersion: is required (and 1 more problems); nothing was stored")
    assert lines[1:] == [
        "  item 0, line 1: apiVersion: is required",
        "  item 1, line 2: metadata.namespace: is required",
    ]
    assert not (tmp_path / "policy-server.db").exists()


def test_neither_json_nor_yaml_says_both(tmp_path):
    result = cli("ingest", "-", env={"POLICY_SERVER_DATA_DIR": str(tmp_path)}, stdin=b"[1\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr.decode()
    assert "the input is neither JSON (line 2, column 1" in result.stderr.decode()
    assert "nor YAML (" in result.stderr.decode()


def test_apply_actions_with_a_decision_id_and_no_url_says_what_it_needs():
    result = cli("apply-actions", "--dry-run", "01KZTRDXMGG3C76W16PJVK9ZDS")
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr
    assert "--url http://HOST:8181" in stderr and "POLICY_SERVER_TOKEN" in stderr


def test_apply_actions_refuses_json_that_is_not_a_decision():
    result = cli("apply-actions", "--dry-run", "-", stdin=b"[]")
    assert result.returncode == 1 and "Traceback" not in result.stderr.decode()
    assert "not a decision" in result.stderr.decode()
