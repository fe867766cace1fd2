"""``policy-server apply-actions``: apply a decision's abort actions with kubectl."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from policy_server.cli._base import CommandError, main
from policy_server.cli._client import TOKEN_HELP, Client


@main.command("apply-actions")
@click.argument("decision", default="-")
@click.option("--url", default=None, help="Fetch DECISION (an id) from this policy-server.")
@click.option("--token", envvar="POLICY_SERVER_TOKEN", default=None, help=TOKEN_HELP)
@click.option("--dry-run", is_flag=True, help="Print the kubectl commands instead of running them.")
@click.option("--kubectl", default="kubectl", show_default=True, help="The kubectl to run.")
def apply_actions(decision: str, url: str | None, token: str | None, dry_run: bool, kubectl: str) -> None:
    """Apply a decision's abort actions with `kubectl patch --type merge`.

    DECISION is a decision id (with --url), a file holding a decision (the answer of POST /v1/decisions),
    or - for stdin. Needs `patch` on promotions and the `promote` verb on stages (examples/kargo/rbac.yaml).
    """
    document = _load_decision(decision, url, token)
    actions = [a for a in document.get("actions") or [] if a.get("type") == "abort"]
    failures = 0
    for action in actions:
        ref = action["promotion"]
        command = [
            kubectl,
            "patch",
            "promotions.kargo.akuity.io",
            ref["name"],
            "--namespace",
            ref["namespace"],
            "--type",
            "merge",
            "--patch",
            json.dumps(action["patch"], separators=(",", ":")),
        ]
        if dry_run:
            click.echo(shlex.join(command))
            continue
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as exc:
            raise CommandError(f"cannot run {kubectl}: {exc}") from None
        if result.returncode == 0:
            click.echo(f"aborted {ref['namespace']}/{ref['name']} ({action.get('policy')}: {action.get('reason')})")
        else:
            failures += 1
            click.echo(f"failed to abort {ref['namespace']}/{ref['name']}: {result.stderr.strip()}", err=True)
    if not actions:
        click.echo(f"decision {document.get('id', '?')} has no abort actions")
    raise SystemExit(1 if failures else 0)


def _load_decision(decision: str, url: str | None, token: str | None) -> dict[str, Any]:
    if url:
        with Client(url, token, "reader", timeout=30) as client:
            return client.get_json(f"/v1/decisions/{decision}")
    if decision != "-" and not Path(decision).is_file():
        raise CommandError(
            f"{decision!r} is not a file. To apply a logged decision by its id, say where it is logged: "
            f"--url http://HOST:8181 (with a token: --token or POLICY_SERVER_TOKEN); or give the decision's JSON "
            "(the answer of POST /v1/decisions) as a file, or on stdin with -"
        )
    text = sys.stdin.read() if decision == "-" else Path(decision).read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"not a decision (JSON): {exc}") from None
    if not isinstance(document, dict):
        raise CommandError("not a decision: expected the JSON object POST /v1/decisions answers")
    return document
