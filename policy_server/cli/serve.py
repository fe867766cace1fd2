"""``policy-server run``: serve the API."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile

import click

from policy_server import __version__
from policy_server.cli._base import configure_logging, load_settings, main, open_database, redact
from policy_server.cli.watch import KUBECONFIG_HELP, NAMESPACE_HELP
from policy_server.settings import Settings


@main.command()
@click.option("--host", default=None, help="Address to listen on [env POLICY_SERVER_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env POLICY_SERVER_PORT; default 8181].")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes.")
@click.option(
    "--watch", is_flag=True, default=None, help="Also watch Kargo state in Kubernetes [env POLICY_SERVER_WATCH]."
)
@click.option("--namespace", "namespaces", multiple=True, help="With --watch: " + NAMESPACE_HELP)
@click.option("--kubeconfig", default=None, help="With --watch: " + KUBECONFIG_HELP)
@click.option(
    "--enforce",
    type=click.Choice(["off", "dry-run", "on"]),
    default=None,
    help="With --watch: apply abort actions (on), log what would be done (dry-run), or neither "
    "[env POLICY_SERVER_ENFORCE; default dry-run].",
)
def run(
    host: str | None,
    port: int | None,
    workers: int,
    watch: bool | None,
    namespaces: tuple[str, ...],
    kubeconfig: str | None,
    enforce: str | None,
) -> None:
    """Serve the API (the embedded SQLite store is created and upgraded by itself)."""
    import uvicorn

    settings = load_settings(
        host=host,
        port=port,
        watch=watch,
        watch_namespaces=",".join(namespaces) or None,
        kubeconfig=kubeconfig,
        enforce=enforce,
    )
    configure_logging(settings.log_level, settings.log_format)
    for name in settings.extra:
        logging.getLogger("policy_server").warning("unknown setting %s ignored", name)
    tls = bool(settings.tls_cert_file)
    if tls != bool(settings.tls_key_file):
        raise click.UsageError("POLICY_SERVER_TLS_CERT_FILE and POLICY_SERVER_TLS_KEY_FILE go together")
    asyncio.run(open_database(settings, lambda database: _prepare(database, settings)))
    made: list[str] = []
    """Directories the workers share, removed when the server stops."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes: /metrics adds up every worker's counters from this directory.
        made.append(tempfile.mkdtemp(prefix="policy-server-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made[-1]
    if workers > 1 and settings.watch:
        from policy_server.cluster import WatchTurn

        # One of the workers watches (and enforces), the others take over if it dies: a lock file they share.
        made.append(tempfile.mkdtemp(prefix="policy-server-watch-"))
        os.environ[WatchTurn.ENVIRONMENT] = os.path.join(made[-1], "lock")
    # Workers re-read the environment: pass the flags on through it.
    os.environ["POLICY_SERVER_HOST"] = settings.host
    os.environ["POLICY_SERVER_PORT"] = str(settings.port)
    os.environ["POLICY_SERVER_WATCH"] = "true" if settings.watch else "false"
    os.environ["POLICY_SERVER_WATCH_NAMESPACES"] = settings.watch_namespaces
    os.environ["POLICY_SERVER_KUBECONFIG"] = settings.kubeconfig
    os.environ["POLICY_SERVER_ENFORCE"] = settings.enforce
    os.environ["POLICY_SERVER_AUTO_MIGRATE"] = "false"
    os.environ["POLICY_SERVER_CONFIGURE_LOGGING"] = "1"  # worker processes set up logging themselves
    if workers > 1 and not settings.engine_workers:
        # The cores are shared by the server processes: each gets its share of Rego workers, so that
        # there is still about one Rego worker per core (more only switch between each other, and leak).
        os.environ["POLICY_SERVER_ENGINE_WORKERS"] = str(max(1, min(os.cpu_count() or 1, 4) // workers))
    scheme = "https" if tls else "http"
    click.echo(f"policy-server {__version__} on {scheme}://{settings.host}:{settings.port} (docs at /docs)", err=True)
    click.echo(f"store: {redact(settings.effective_database_url)}", err=True)
    try:
        uvicorn.run(
            "policy_server.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level=settings.log_level.lower(),
            log_config=None,
            access_log=False,
            ssl_certfile=settings.tls_cert_file or None,
            ssl_keyfile=settings.tls_key_file or None,
        )
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


async def _prepare(database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Migrate once here (so that several workers do not race to), then make sure an admin token exists."""
    from policy_server.app import bootstrap_admin
    from policy_server.service.access import AccessService
    from policy_server.store import AccessStore, current_revision, head_revision, upgrade

    if settings.should_auto_migrate:
        await upgrade(database)
    if await current_revision(database) != head_revision():
        return  # the app reports the pending migration in /ready and its log
    await bootstrap_admin(AccessService(AccessStore(database), enabled=settings.auth == "enabled"), settings)
