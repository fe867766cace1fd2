"""``policy-server tokens``: API tokens, in the configured database."""

from __future__ import annotations

import click

from policy_server.cli._base import main, with_database


@main.group()
def tokens() -> None:
    """Create, list and revoke API tokens (in the configured database)."""


@tokens.command("create")
@click.option("--name", required=True, help="Token name (a DNS label): the actor in the audit trail.")
@click.option(
    "--role", required=True, type=click.Choice(["reader", "controller", "policy-author", "admin"]), help="Role."
)
@click.option("--namespace", "namespaces", multiple=True, help="Limit to this namespace (repeat for several).")
def tokens_create(name: str, role: str, namespaces: tuple[str, ...]) -> None:
    """Create a token and print its secret (shown only now)."""
    from policy_server.service.access import AccessService
    from policy_server.store import AccessStore

    token, secret = with_database(
        lambda database: AccessService(AccessStore(database)).create_token(name, role, list(namespaces) or None, "cli")
    )
    scope = ", ".join(token.namespaces) if token.namespaces else "all namespaces"
    click.echo(f"created token {token.name} ({token.role}, {scope}); its secret, shown only now:", err=True)
    click.echo(secret)


@tokens.command("list")
def tokens_list() -> None:
    """List tokens (never their secrets)."""
    from policy_server.store import AccessStore

    for token in with_database(lambda database: AccessStore(database).tokens()):
        scope = ",".join(token.namespaces) if token.namespaces is not None else "*"
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
        click.echo(f"{token.name}\t{token.role}\t{scope}\t{state}\tcreated by {token.created_by}")


@tokens.command("revoke")
@click.argument("name")
def tokens_revoke(name: str) -> None:
    """Revoke a token by name."""
    from policy_server.service.access import AccessService
    from policy_server.store import AccessStore

    with_database(lambda database: AccessService(AccessStore(database)).revoke(name, "cli"))
    click.echo(f"revoked {name}")
