"""One watcher per server: the worker processes of one ``policy-server run --workers N --watch`` share a lock
file, and the worker holding it watches (and enforces); the others wait for their turn, taking over when the
holder dies. The holder publishes what ``/ready`` says about the watch next to the lock, so that every worker
answers ``/ready`` alike.

Without it every worker listed and watched every Kargo kind on its own: N times the API server's load and the
store's writes for the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO

_ENVIRONMENT = "POLICY_SERVER_WATCH_LOCK"
_TRY_S = 1.0
_STALE_S = 5.0
"""A published state older than this is not believed (the holder is stuck or gone)."""


class WatchTurn:
    """The lock file of the workers of one server."""

    ENVIRONMENT = _ENVIRONMENT
    """Set by ``policy-server run`` for its workers: the lock file's path."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.published = self.path.with_name(self.path.name + ".state")
        self._file: IO[bytes] | None = None

    async def take(self) -> None:
        """Return once this process holds the watch (polling: a thread blocked in flock would outlive shutdown)."""
        file = open(self.path, "a+b")  # noqa: SIM115 - held for the life of the process
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.sleep(_TRY_S)
                continue
            self._file = file
            return

    @property
    def held(self) -> bool:
        return self._file is not None

    def publish(self, ready: bool, detail: str) -> None:
        """What ``/ready`` says about the watch, for the other workers (written whole, then renamed)."""
        staging = self.published.with_name(f"{self.published.name}.{os.getpid()}")
        staging.write_text(json.dumps({"ready": ready, "detail": detail, "pid": os.getpid()}))
        staging.replace(self.published)

    def read(self) -> tuple[bool, str]:
        """What the worker holding the watch published (not ready when nothing recent is published)."""
        try:
            age = time.time() - self.published.stat().st_mtime
            state = json.loads(self.published.read_text())
        except (OSError, ValueError):
            return False, "another worker of this server is taking the watch"
        if age > _STALE_S:
            return False, f"the worker watching (pid {state.get('pid')}) has not reported for {age:.0f} s"
        return bool(state.get("ready")), f"{state.get('detail')} (worker pid {state.get('pid')})"

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self.published.unlink()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def shared_turn() -> WatchTurn | None:
    """The turn of this worker's server, when it runs several workers."""
    path = os.environ.get(_ENVIRONMENT)
    return WatchTurn(path) if path else None
