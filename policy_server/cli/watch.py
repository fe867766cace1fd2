"""``policy-server watch``: record Kargo state straight from the Kubernetes API (the server's ``--watch`` alone)."""

from __future__ import annotations

import asyncio
import logging

import click

from policy_server.cli._base import configure_logging, load_settings, main, open_database
from policy_server.cli._client import TOKEN_HELP

NAMESPACE_HELP = "Watch this namespace (repeat for several); default: every Kargo project namespace."
KUBECONFIG_HELP = "Kubeconfig file [env POLICY_SERVER_KUBECONFIG, KUBECONFIG; default ~/.kube/config or in-cluster]."


@main.command("watch")
@click.option("--namespace", "namespaces", multiple=True, help=NAMESPACE_HELP)
@click.option("--kubeconfig", default=None, help=KUBECONFIG_HELP)
@click.option("--url", default=None, help="Record into this running policy-server instead of the database.")
@click.option("--token", envvar="POLICY_SERVER_TOKEN", default=None, help=TOKEN_HELP)
def watch_command(namespaces: tuple[str, ...], kubeconfig: str | None, url: str | None, token: str | None) -> None:
    """List and watch Stages, Promotions, Freight and AnalysisRuns and record them, until interrupted.

    Into the configured database (migrated first when POLICY_SERVER_AUTO_MIGRATE says so), or with --url into a
    running server's POST /v1/state (a controller token). `policy-server run --watch` does the same inside the
    server.
    """
    settings = load_settings(kubeconfig=kubeconfig)
    configure_logging("INFO" if settings.log_level == "WARNING" else settings.log_level, "text")
    logging.getLogger("policy_server.watch").setLevel(logging.INFO)
    try:
        asyncio.run(_watch(settings, tuple(namespaces) or settings.namespaces_to_watch, url, token))
    except KeyboardInterrupt:
        pass


async def _watch(settings, namespaces, url, token) -> None:  # type: ignore[no-untyped-def]
    from policy_server.cluster import HttpSink, StoreSink, Watcher, api_client
    from policy_server.store import StateStore, upgrade

    api = await api_client(settings.kubeconfig or None)
    try:
        if url:
            sink = HttpSink(url, token)
            try:
                await Watcher(api, sink, namespaces).run()
            finally:
                await sink.close()
            return

        async def into_store(database):  # type: ignore[no-untyped-def]
            if settings.should_auto_migrate:
                await upgrade(database)
            await Watcher(api, StoreSink(StateStore(database)), namespaces).run()

        await open_database(settings, into_store)
    finally:
        await api.close()
