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
    help="Items per transaction, recorded as each batch completes: a watch stream is recorded while it runs "
    "(0: the whole input is one transaction).",
)
def ingest(source, url: str | None, token: str | None, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Record Kargo objects from SOURCE (a file, or - for stdin).

    SOURCE may hold `kubectl get ... -o json` output (an object or a List), `kubectl get -w -o json`
    output (objects or watch events, one after another), NDJSON, or YAML (`kubectl get -o yaml`, manifests,
    documents separated by `---`). With --url, pass a controller token with --token or POLICY_SERVER_TOKEN.
    """
    from policy_server.kargo import split_documents, stream_documents

    totals: dict[str, int] = {}
    if batch > 0:
        # A stream (a watch): each batch is recorded as soon as it is complete, while the input goes on.
        bodies = _batches(stream_documents(source), batch)
        if url:
            with Client(url, token, "controller") as client:
                _add(totals, client.post_all("/v1/state", bodies, "application/x-ndjson"))
        else:
            _add(totals, _apply_locally(bodies))
        click.echo(json.dumps(totals))
        return
    documents = split_documents(source.read())
    if not documents:
        raise CommandError("the input holds no JSON or YAML documents")
    body = b"\n".join(documents) + b"\n"
    if url:
        with Client(url, token, "controller") as client:
            _add(totals, client.post_all("/v1/state", iter([body]), "application/x-ndjson"))
    else:
        _add(totals, _apply_locally(iter([body]), parse_first=True))
    click.echo(json.dumps(totals))


def _batches(documents: Iterator[bytes], size: int) -> Iterator[bytes]:
    chunk: list[bytes] = []
    for document in documents:
        chunk.append(document)
        if len(chunk) >= size:
            yield b"\n".join(chunk) + b"\n"
            chunk = []
    if chunk:
        yield b"\n".join(chunk) + b"\n"


def _add(totals: dict[str, int], answers: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> None:
    for counts in answers:
        for key, value in counts.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value


def _apply_locally(bodies: Iterator[bytes], *, parse_first: bool = False) -> list[dict[str, int]]:
    """Every batch into the configured database, in order, each one transaction, on one connection. With
    ``parse_first`` (the whole input is one batch) it is parsed before the database is opened, so that malformed
    input stores nothing and creates no database."""
    from policy_server.kargo import parse_body
    from policy_server.store import StateStore, upgrade

    settings = load_settings()
    parsed = [parse_body(body, "application/x-ndjson") for body in bodies] if parse_first else None

    async def apply(database):  # type: ignore[no-untyped-def]
        if settings.should_auto_migrate:
            await upgrade(database)
        store, answers = StateStore(database), []
        for items in parsed if parsed is not None else (parse_body(b, "application/x-ndjson") for b in bodies):
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
