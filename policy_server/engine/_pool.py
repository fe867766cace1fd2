"""A pool of killable Rego worker processes with a deadline and a memory watchdog per request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from policy_server import metrics
from policy_server.engine._protocol import HEADER_SIZE, decode, frame, header_length

_log = logging.getLogger("policy_server.engine")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_WATCH_INTERVAL = 0.02


class WorkerFailure(Exception):
    """A request did not complete; ``code`` is the reason code a decision reports."""

    def __init__(self, code: str, message: str, *, worker_ok: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.worker_ok = worker_ok
        """The worker never saw the request (it could not be encoded) and can be reused."""


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """Bounds for one request to a worker."""

    timeout_s: float = 2.0
    """Deadline of one evaluation (``evaluation_timeout`` past it)."""
    memory_bytes: int = 1024 * 1024 * 1024
    """Resident memory a worker may reach (``evaluation_memory_exceeded`` past it)."""
    compile_timeout_s: float = 20.0
    """Deadline of compiling a bundle or running a test module."""
    recycle_bytes: int | None = None
    """A worker grown past this between requests is replaced by a fresh one, its bundle compiled before it
    serves (default: half of ``memory_bytes``). regopy keeps memory from every evaluation (bench/RESULTS.md),
    so a long-lived worker would otherwise reach ``memory_bytes`` and fail a decision."""

    @property
    def recycle_at(self) -> int:
        """The resident size past which an idle worker is replaced."""
        return self.recycle_bytes if self.recycle_bytes is not None else self.memory_bytes // 2


class _Worker:
    """One worker process and what it has compiled."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.compiled: set[str] = set()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    def resident(self) -> int:
        """Resident bytes of the process (0 when it cannot be read)."""
        try:
            with open(f"/proc/{self.pid}/statm") as handle:
                return int(handle.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return 0

    async def request(self, message: dict[str, Any], timeout_s: float, memory_bytes: int) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            data = frame(message)
        except (OverflowError, TypeError, ValueError) as exc:
            # e.g. an integer beyond 64 bits: Rego in this engine cannot receive it.
            message = f"the input cannot be given to the engine: {exc}"
            raise WorkerFailure("evaluation_error", message, worker_ok=True) from exc
        self.process.stdin.write(data)
        reply = asyncio.ensure_future(self._read())
        watchdog = asyncio.ensure_future(self._watch(memory_bytes))
        try:
            done, _ = await asyncio.wait({reply, watchdog}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if reply in done:
                return reply.result()
            if watchdog in done:
                raise WorkerFailure(
                    "evaluation_memory_exceeded",
                    f"the Rego engine grew past {memory_bytes // (1024 * 1024)} MiB and was stopped",
                )
            raise WorkerFailure("evaluation_timeout", f"evaluation did not finish within {timeout_s:g} s")
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            code = await self._exit_reason()
            raise WorkerFailure("engine_crashed", f"the Rego engine process died ({code})") from exc
        finally:
            for task in (reply, watchdog):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        header = await self.process.stdout.readexactly(HEADER_SIZE)
        return decode(await self.process.stdout.readexactly(header_length(header)))

    async def _watch(self, limit: int) -> None:
        path = f"/proc/{self.pid}/statm"
        while True:
            await asyncio.sleep(_WATCH_INTERVAL)
            try:
                with open(path) as handle:
                    resident = int(handle.read().split()[1]) * _PAGE
            except (OSError, ValueError, IndexError):
                return await asyncio.sleep(3600)
            if resident > limit:
                return None

    async def _exit_reason(self) -> str:
        try:
            code = await asyncio.wait_for(self.process.wait(), 2)
        except TimeoutError:
            return "no exit status"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    async def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 5)


class WorkerPool:
    """Worker processes that run one request each at a time; a failed worker is replaced by a fresh one."""

    def __init__(self, size: int = 1, limits: PoolLimits | None = None) -> None:
        self.size = max(1, size)
        self.limits = limits or PoolLimits()
        self.restarts = 0
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: list[_Worker] = []
        self._start_lock = asyncio.Lock()
        self._closed = False
        self.recycled = 0
        self._last_compile: dict[str, Any] | None = None
        self._recycling: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the workers (also done lazily by the first request)."""
        async with self._start_lock:
            if self._idle is not None:
                return
            idle: asyncio.Queue[_Worker] = asyncio.Queue()
            for _ in range(self.size):
                worker = await self._spawn()
                self._workers.append(worker)
                idle.put_nowait(worker)
            self._idle = idle

    async def close(self) -> None:
        """Stop every worker."""
        self._closed = True
        for task in list(self._recycling):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for worker in self._workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
            await worker.kill()
        self._workers.clear()

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [w.pid for w in self._workers]

    async def run(
        self,
        message: dict[str, Any],
        *,
        compile_message: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send ``message`` to an idle worker; compile ``compile_message`` there first if it has not."""
        if self._idle is None:
            await self.start()
        assert self._idle is not None
        worker = await self._idle.get()
        try:
            if not worker.alive():
                worker = await self._replace(worker)
            if compile_message is not None:
                self._last_compile = compile_message
                if compile_message["key"] not in worker.compiled:
                    limits = self.limits
                    reply = await worker.request(compile_message, limits.compile_timeout_s, limits.memory_bytes)
                    if not reply.get("ok"):
                        return reply
                    worker.compiled.add(compile_message["key"])
            return await worker.request(message, timeout_s or self.limits.timeout_s, self.limits.memory_bytes)
        except WorkerFailure as failure:
            if not failure.worker_ok:
                worker = await self._replace(worker)
            raise
        except BaseException:
            # Cancelled mid-request: the worker's state is unknown, so it is not reused.
            worker = await self._replace(worker)
            raise
        finally:
            if not self._closed and worker.alive() and worker.resident() > self.limits.recycle_at:
                task = asyncio.create_task(self._recycle(worker))
                self._recycling.add(task)
                task.add_done_callback(self._recycling.discard)
            else:
                self._idle.put_nowait(worker)

    async def _recycle(self, worker: _Worker) -> None:
        """Replace a grown worker by a fresh one that has compiled the current bundle; the old one serves no more."""
        assert self._idle is not None
        fresh = worker
        try:
            fresh = await self._spawn()
            warm = self._last_compile
            if warm is not None:
                reply = await fresh.request(warm, self.limits.compile_timeout_s, self.limits.memory_bytes)
                if reply.get("ok"):
                    fresh.compiled.add(warm["key"])
            self._workers = [fresh if w is worker else w for w in self._workers]
            self.recycled += 1
            metrics.ENGINE_RECYCLES.inc()
            _log.info("Rego worker %s recycled (%d MiB); %s takes over", worker.pid, worker.resident() >> 20, fresh.pid)
            await worker.kill()
        except BaseException:
            # Could not start a replacement: keep serving with the old worker (its hard limit still holds).
            if fresh is not worker:
                await fresh.kill()
            fresh = worker
            raise
        finally:
            self._idle.put_nowait(fresh)

    async def _replace(self, worker: _Worker) -> _Worker:
        await worker.kill()
        self.restarts += 1
        metrics.ENGINE_RESTARTS.inc()
        fresh = await self._spawn()
        self._workers = [fresh if w is worker else w for w in self._workers]
        _log.warning("Rego worker %s replaced by %s", worker.pid, fresh.pid)
        return fresh

    async def _spawn(self) -> _Worker:
        # An empty environment: opa.runtime() would hand a policy the process environment (secrets).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(sys.path)}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from policy_server.engine._worker import main; main()",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,
            env=env,
            start_new_session=True,
        )
        return _Worker(process)
