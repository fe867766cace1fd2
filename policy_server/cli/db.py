"""``policy-server db``: the store's schema migrations."""

from __future__ import annotations

import click

from policy_server.cli._base import load_settings, main, redact, with_database


@main.group()
def db() -> None:
    """Manage the store's schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to POLICY_SERVER_DATABASE_URL."""
    from policy_server.store import upgrade

    settings = load_settings()
    with_database(lambda database: upgrade(database, revision), settings)
    click.echo(f"database at {revision}: {redact(settings.effective_database_url)}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of the code."""
    from policy_server.store import current_revision, head_revision

    current = with_database(current_revision)
    click.echo(f"database: {current or '(empty)'}\ncode:     {head_revision()}")
