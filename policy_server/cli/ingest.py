"""``policy-server ingest``: record Kargo objects from a file or stdin, locally or into a running server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click

from policy_server.cli._base import CommandError, load_settings, main, with_database
from policy_server.cli._client import TOKEN_HELP, Client


@main.command()
@click.argument("source", type=click.File("rb"))
@click.option("--url", default=None, help="Post to a running server instead of writing the database directly.")
@click.option("--token", envvar="POLICY_SERVER_TOKEN", default=None, help=TOKEN_HELP)
@click.option(
    "--batch",
    type=int,
    default=0,
    show_default=True,
    help="Items per transaction (0: the whole input is one transaction).",
)
def ingest(source, url: str | None, token: str | None, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Record Kargo objects from SOURCE (a file, or - for stdin).

    SOURCE may hold `kubectl get ... -o json` output (an object or a List), `kubectl get -w -o json`
    output (objects or watch events, one after another), NDJSON, or YAML (`kubectl get -o yaml`, manifests,
    documents separated by `---`). With --url, pass a controller token with --token or POLICY_SERVER_TOKEN.
    """
    from policy_server.kargo import split_documents

    documents = split_documents(source.read())
    if not documents:
        raise CommandError("the input holds no JSON or YAML documents")
    chunks = [documents] if batch <= 0 else [documents[i : i + batch] for i in range(0, len(documents), batch)]
    bodies = [b"\n".join(chunk) + b"\n" for chunk in chunks]
    totals: dict[str, int] = {}
    if url:
        with Client(url, token, "controller") as client:
            _add(totals, client.post_all("/v1/state", iter(bodies), "application/x-ndjson"))
    else:
        _add(totals, _apply_locally(bodies))
    click.echo(json.dumps(totals))


def _add(totals: dict[str, int], answers: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> None:
    for counts in answers:
        for key, value in counts.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value


def _apply_locally(bodies: list[bytes]) -> list[dict[str, int]]:
    """Every batch into the configured database, in order, each one transaction; all are parsed first, so
    malformed input stores nothing (and creates no database)."""
    from policy_server.kargo import parse_body
    from policy_server.store import StateStore, upgrade

    settings = load_settings()
    batches = [parse_body(body, "application/x-ndjson") for body in bodies]

    async def apply(database):  # type: ignore[no-untyped-def]
        if settings.should_auto_migrate:
            await upgrade(database)
        store, answers = StateStore(database), []
        for items in batches:
            result = await store.apply(items)
            answers.append(
                {
                    "items": result.total,
                    "applied": result.applied,
                    "unchanged": result.unchanged,
                    "stale": result.stale,
                    "deleted": result.deleted,
                    "skipped": result.skipped,
                }
            )
        return answers

    return with_database(apply, settings)
