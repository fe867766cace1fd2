"""The ``policy-server`` command, one module per command group.

``_base`` holds what they share (the ``main`` group, settings, one database per command, turning errors into
messages and exit codes), ``_client`` the HTTP client for ``--url``. A new command is a module here that
decorates a function with ``@main.command()`` and is imported below.
"""

from policy_server.cli import actions, db, ingest, openapi, policies, serve, tokens, watch
from policy_server.cli._base import main

__all__ = ["actions", "db", "ingest", "main", "openapi", "policies", "serve", "tokens", "watch"]
