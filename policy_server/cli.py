"""The ``policy-server`` command: run the service, migrate the store, ingest state, write the OpenAPI spec."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from policy_server import __version__
from policy_server.errors import PolicyServerError
from policy_server.settings import Settings, SettingsError


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@click.group()
@click.version_option(__version__, prog_name="policy-server")
def main() -> None:
    """policy-server: policy as code for Kargo promotions."""


@main.command()
@click.option("--host", default=None, help="Address to listen on [env POLICY_SERVER_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env POLICY_SERVER_PORT; default 8181].")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes.")
def run(host: str | None, port: int | None, workers: int) -> None:
    """Serve the API (the embedded SQLite store is created and upgraded by itself)."""
    import uvicorn

    settings = _settings(host=host, port=port)
    _configure_logging(settings.log_level)
    for name in settings.extra:
        logging.getLogger("policy_server").warning("unknown setting %s ignored", name)
    if settings.should_auto_migrate:
        # Migrate once here, so that several workers do not race to do it.
        from policy_server.store import upgrade

        asyncio.run(_with_db(settings, upgrade))
    # Workers re-read the environment: pass the flags on through it.
    os.environ["POLICY_SERVER_HOST"] = settings.host
    os.environ["POLICY_SERVER_PORT"] = str(settings.port)
    os.environ["POLICY_SERVER_AUTO_MIGRATE"] = "false"
    click.echo(f"policy-server {__version__} on http://{settings.host}:{settings.port} (docs at /docs)", err=True)
    click.echo(f"store: {_redact(settings.effective_database_url)}", err=True)
    uvicorn.run(
        "policy_server.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


async def _with_db(settings: Settings, action) -> object:  # type: ignore[no-untyped-def]
    from policy_server.store import Database

    db = Database(settings.effective_database_url)
    try:
        return await action(db)
    finally:
        await db.dispose()


@main.group()
def db() -> None:
    """Manage the store's schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to POLICY_SERVER_DATABASE_URL."""
    from policy_server.store import upgrade

    settings = _settings()
    _configure_logging("WARNING")
    try:
        asyncio.run(_with_db(settings, lambda d: upgrade(d, revision)))
    except PolicyServerError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"database at {revision}: {_redact(settings.effective_database_url)}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of the code."""
    from policy_server.store import current_revision, head_revision

    settings = _settings()
    _configure_logging("WARNING")
    current = asyncio.run(_with_db(settings, current_revision))
    click.echo(f"database: {current or '(empty)'}\ncode:     {head_revision()}")


@main.command()
@click.argument("source", type=click.File("rb"))
@click.option("--url", default=None, help="Post to a running server instead of writing the database directly.")
@click.option(
    "--batch",
    type=int,
    default=0,
    show_default=True,
    help="Items per transaction (0: the whole input is one transaction).",
)
def ingest(source, url: str | None, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Record Kargo objects from SOURCE (a file, or - for stdin).

    SOURCE may hold `kubectl get ... -o json` output (an object or a List), `kubectl get -w -o json`
    output (objects or watch events, one after another), or NDJSON.
    """
    documents = list(_json_documents(source.read()))
    if not documents:
        raise click.ClickException("the input holds no JSON documents")
    chunks = [documents] if batch <= 0 else [documents[i : i + batch] for i in range(0, len(documents), batch)]
    totals: dict[str, int] = {}
    for chunk in chunks:
        body = b"\n".join(json.dumps(d, separators=(",", ":")).encode() for d in chunk) + b"\n"
        counts = _post(url, body) if url else _apply_locally(body)
        for key, value in counts.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    click.echo(json.dumps(totals))


def _apply_locally(body: bytes) -> dict[str, int]:
    from policy_server.kargo import parse_body
    from policy_server.store import StateStore, upgrade

    settings = _settings()
    _configure_logging("WARNING")
    try:
        items = parse_body(body, "application/x-ndjson")
    except PolicyServerError as exc:
        lines = "\n".join(f"  {e.to_dict()}" for e in exc.errors[:20])
        raise click.ClickException(f"{exc.detail}\n{lines}") from None

    async def action(database):  # type: ignore[no-untyped-def]
        if settings.should_auto_migrate:
            await upgrade(database)
        result = await StateStore(database).apply(items)
        return {
            "items": result.total,
            "applied": result.applied,
            "unchanged": result.unchanged,
            "stale": result.stale,
            "deleted": result.deleted,
            "skipped": result.skipped,
        }

    try:
        return asyncio.run(_with_db(settings, action))  # type: ignore[return-value]
    except PolicyServerError as exc:
        raise click.ClickException(exc.detail) from None


def _post(url: str, body: bytes) -> dict[str, int]:
    import httpx

    target = url.rstrip("/") + "/v1/state"
    try:
        response = httpx.post(target, content=body, headers={"content-type": "application/x-ndjson"}, timeout=120)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {target}: {exc}") from None
    if response.status_code != 200:
        raise click.ClickException(f"{target} answered {response.status_code}: {response.text}")
    return response.json()


def _json_documents(data: bytes) -> Iterator[object]:
    """JSON values one after another: one document, NDJSON, or kubectl's indented watch output."""
    text = data.decode("utf-8")
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        yield value


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("openapi/openapi.json"),
    show_default=True,
    help="Where to write the spec (- for stdout).",
)
def openapi(output: Path) -> None:
    """Write the OpenAPI document the app serves."""
    from policy_server.app import create_app

    app = create_app(_settings())
    text = json.dumps(app.openapi_schema.to_schema(), indent=2, ensure_ascii=False) + "\n"
    if str(output) == "-":
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    main()
