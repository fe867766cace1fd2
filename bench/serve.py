"""``policy-server`` with the bench's app (``ceiling_app``: the product's app plus the POST ceiling route).

Runs the product's own ``policy-server`` command line; only the app factory uvicorn imports is swapped, so the
settings, preparation and server processes are those of ``policy-server run``.
"""

from __future__ import annotations

import uvicorn

from policy_server.cli import main

_run = uvicorn.run


def _bench_run(app: object, **kwargs: object) -> None:
    if app == "policy_server.app:create_app":
        app = "ceiling_app:create_app"  # bench/ is on sys.path here and, through spawn, in each server process
    _run(app, **kwargs)  # type: ignore[arg-type]


uvicorn.run = _bench_run  # type: ignore[assignment]

if __name__ == "__main__":
    main()
