"""A pool of killable Rego worker processes with a deadline and a memory watchdog per request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from policy_server import metrics
from policy_server.engine._codes import (
    ENGINE_BUSY,
    ENGINE_CRASHED,
    EVALUATION_ERROR,
    EVALUATION_MEMORY,
    EVALUATION_TIMEOUT,
)
from policy_server.engine._protocol import (
    HEADER_SIZE,
    Compile,
    Compiled,
    EvaluateEach,
    EvaluatePreset,
    Failed,
    Fork,
    Forked,
    Missing,
    Rejected,
    Reply,
    Request,
    Results,
    decode_reply,
    frame,
    header_length,
)
from policy_server.engine._worker import NICE_ENV

_log = logging.getLogger("policy_server.engine")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_WATCH_INTERVAL = 0.02


class WorkerFailure(Exception):
    """A request did not complete; ``code`` is the reason code (``_codes``) a decision reports."""

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
    """A worker grown by more than this since its first answer is replaced between requests by a fresh one
    (forked with the current bundle compiled; default: a quarter of ``memory_bytes``). A safeguard: regopy
    kept memory from every evaluation while aiohttp's frozenlist was loaded before it (fixed by the load order
    in ``policy_server/__init__.py``); any growth left would otherwise reach ``memory_bytes`` and fail a
    decision."""

    recycle_check_every: int = 8
    """How many requests a worker answers between looks at its size (a /proc read each)."""
    wait_s: float | None = None
    """How long a request waits for a free worker (``engine_busy`` past it); default: its own deadline.
    Authoring waits in its bounded queue for as long as a check may take; a decision no longer than it may run."""

    @property
    def recycle_growth(self) -> int:
        """Growth past which an idle worker is replaced."""
        return self.recycle_bytes if self.recycle_bytes is not None else self.memory_bytes // 4


class _ForkedProcess:
    """A worker forked by the zygote, with the face of an ``asyncio.subprocess.Process`` that ``_Worker``
    uses. It is not this process's child: its end is seen through a pidfd, its exit status is not known."""

    forked = True

    def __init__(self, pid: int, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader, pidfd: int) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(pidfd, self._ended)

    @classmethod
    async def attach(cls, pid: int, requests_fd: int, replies_fd: int) -> _ForkedProcess:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.close(requests_fd)
            os.close(replies_fd)
            raise
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(replies_fd, "rb", 0))
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(requests_fd, "wb", 0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return cls(pid, writer, reader, pidfd)

    def _ended(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = -1  # ended; how is known only to the zygote, which does not wait for it
        self.stdin.close()
        if not self._exited.done():
            self._exited.set_result(None)

    async def wait(self) -> int:
        await asyncio.shield(self._exited)
        return -1

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)


class _Zygote:
    """A process that has loaded regopy and compiled the current bundle, and forks workers from that state
    (``_worker.zygote``): a few ms instead of ~250 ms of CPU for a fresh interpreter. Requests are rare
    (a new bundle, a replaced worker) and go through a blocking socket in a thread, one at a time."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.socket: socket.socket | None = None
        self.compiled: set[str] = set()
        self._lock = threading.Lock()

    async def start(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", f"from policy_server.engine._worker import zygote; zygote({theirs.fileno()})",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=None, env=env,
                start_new_session=True, pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        finally:
            theirs.close()
        ours.settimeout(30)
        self.socket = ours

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None and self.socket is not None

    def _ask(self, message: Request) -> tuple[Reply, list[int]]:
        assert self.socket is not None
        with self._lock:
            self.socket.sendall(frame(message))
            data, fds, _, _ = socket.recv_fds(self.socket, 1 << 16, 2)
            if not data:
                raise ConnectionError("the zygote ended")
            while len(data) < HEADER_SIZE or len(data) < HEADER_SIZE + header_length(data[:HEADER_SIZE]):
                more = self.socket.recv(1 << 16)
                if not more:
                    raise ConnectionError("the zygote ended")
                data += more
            return decode_reply(data[HEADER_SIZE:]), fds

    async def compile(self, message: Compile) -> None:
        reply, _ = await asyncio.to_thread(self._ask, message)
        if isinstance(reply, Compiled):
            self.compiled.add(message.key)

    async def fork(self) -> tuple[_ForkedProcess, set[str]]:
        reply, fds = await asyncio.to_thread(self._ask, Fork())
        if not isinstance(reply, Forked) or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise ConnectionError(f"the zygote could not fork: {reply}")
        process = await _ForkedProcess.attach(reply.pid, fds[0], fds[1])
        return process, set(reply.held)

    async def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 5)


@dataclass(frozen=True, slots=True)
class WorkerView:
    """A worker process as the pool sees it (for status and tests)."""

    pid: int
    compiled: frozenset[str]
    """Keys of the bundles it holds compiled."""
    forked: bool
    """Forked from the zygote with its bundles compiled (rather than started from scratch)."""
    alive: bool = True


class _Worker:
    """One worker process and what it has compiled."""

    def __init__(self, process: asyncio.subprocess.Process | _ForkedProcess) -> None:
        self.process = process
        self.compiled: set[str] = set()
        self.baseline = 0
        """Resident bytes at its first answer: what it grew from."""
        self.requests = 0

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

    async def request(self, message: Request, timeout_s: float, memory_bytes: int) -> Reply:
        """Send one request and wait for its reply, watching the deadline and the worker's size."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            data = frame(message)
        except (OverflowError, TypeError, ValueError) as exc:
            # e.g. an integer beyond 64 bits: Rego in this engine cannot receive it.
            message_text = f"the input cannot be given to the engine: {exc}"
            raise WorkerFailure(EVALUATION_ERROR, message_text, worker_ok=True) from exc
        self.process.stdin.write(data)
        self.requests += 1
        reply = asyncio.ensure_future(self._read())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            # Wait for the reply; every _WATCH_INTERVAL without one, look at the worker's size.
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise WorkerFailure(EVALUATION_TIMEOUT, f"evaluation did not finish within {timeout_s:g} s")
                done, _ = await asyncio.wait({reply}, timeout=min(_WATCH_INTERVAL, remaining))
                if done:
                    return reply.result()
                if self.resident() > memory_bytes:
                    raise WorkerFailure(
                        EVALUATION_MEMORY,
                        f"the Rego engine grew past {memory_bytes // (1024 * 1024)} MiB and was stopped",
                    )
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            code = await self._exit_reason()
            raise WorkerFailure(ENGINE_CRASHED, f"the Rego engine process died ({code})") from exc
        except ValueError as exc:  # a reply that is not one of the protocol's (msgspec.DecodeError)
            raise WorkerFailure(EVALUATION_ERROR, f"the Rego worker answered an unreadable reply: {exc}") from exc
        finally:
            if not reply.done():
                reply.cancel()
                with contextlib.suppress(BaseException):
                    await reply

    async def _read(self) -> Reply:
        assert self.process.stdout is not None
        header = await self.process.stdout.readexactly(HEADER_SIZE)
        return decode_reply(await self.process.stdout.readexactly(header_length(header)))

    async def _exit_reason(self) -> str:
        try:
            code = await asyncio.wait_for(self.process.wait(), 2)
        except TimeoutError:
            return "no exit status"
        if getattr(self.process, "forked", False):
            return "a forked worker: its exit status is the zygote's to see"
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


class BundleRejected(Exception):
    """The worker refused to compile a bundle: its problems (a policy set that should never have been accepted)."""

    def __init__(self, problems: Rejected) -> None:
        super().__init__("; ".join(p.message for p in problems.problems) or "the policy set does not compile")
        self.problems = problems


class WorkerPool:
    """Worker processes that run one request each at a time; a failed worker is replaced by a fresh one.

    The pool knows which bundles each worker holds from the worker itself (every ``Compiled`` and
    ``Missing`` reply lists them), so its view cannot drift: a bundle the worker dropped is compiled again
    and the question asked once more. Waiting for a free worker is bounded by the request's deadline
    (``engine_busy`` past it). One pool serves one kind of work: decisions and authoring never share one.
    """

    def __init__(self, size: int = 1, limits: PoolLimits | None = None, *, name: str = "decisions",
                 warm_zygote: bool = True, nice: int = 0) -> None:  # fmt: skip
        self.size = max(1, size)
        self.limits = limits or PoolLimits()
        self.name = name
        self.nice = nice
        """CPU niceness of this pool's processes (authoring runs below decisions)."""
        self.restarts = 0
        self.recycled = 0
        self._warm_zygote = warm_zygote
        """Teach the zygote every bundle compiled (decisions: forks start warm); off for one-off drafts."""
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: list[_Worker] = []
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._last_compile: Compile | None = None
        self._recycling: set[asyncio.Task[None]] = set()
        self._zygote: _Zygote | None = None
        self._zygote_failures = 0

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
        if self._zygote is not None:
            await self._zygote.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [w.pid for w in self._workers]

    @property
    def idle(self) -> int:
        """Workers free right now."""
        return self._idle.qsize() if self._idle is not None else self.size

    def workers(self) -> list[WorkerView]:
        """The current workers as the pool sees them: what each holds compiled, and how it was started."""
        return [
            WorkerView(w.pid, frozenset(w.compiled), bool(getattr(w.process, "forked", False))) for w in self._workers
        ]

    def zygote(self) -> WorkerView | None:
        """The zygote workers are forked from (None when there is none), with what it holds compiled."""
        z = self._zygote
        if z is None:
            return None
        pid = z.process.pid if z.process is not None else 0
        return WorkerView(pid, frozenset(z.compiled), False, alive=z.alive())

    async def evaluate(
        self, bundle: Compile, request: EvaluateEach | EvaluatePreset, *, timeout_s: float | None = None
    ) -> Results:
        """Evaluate ``request`` on a worker holding ``bundle`` (compiled there first when it is not).

        Raises ``WorkerFailure`` (with its reason code) or ``BundleRejected``.
        """
        timeout = timeout_s or self.limits.timeout_s
        async with self._worker(self.limits.wait_s or timeout) as worker:
            for _ in range(2):
                if bundle.key not in worker.compiled:
                    await self._compile(worker, bundle)
                reply = await worker.request(request, timeout, self.limits.memory_bytes)
                match reply:
                    case Results():
                        return reply
                    case Missing(held=held):
                        worker.compiled = set(held)  # dropped since: compile again, ask once more
                    case Failed(message=message):
                        raise WorkerFailure(EVALUATION_ERROR, message, worker_ok=True)
                    case _:
                        raise WorkerFailure(EVALUATION_ERROR, f"unexpected reply {type(reply).__name__}")
            raise WorkerFailure(EVALUATION_ERROR, "the Rego worker dropped the policy set twice in a row")

    async def ask(self, request: Request, *, timeout_s: float | None = None) -> Reply:
        """Send a request that needs no bundle (tests, checks) to a free worker; its reply as is."""
        timeout = timeout_s or self.limits.compile_timeout_s
        async with self._worker(self.limits.wait_s or timeout) as worker:
            reply = await worker.request(request, timeout, self.limits.memory_bytes)
            if isinstance(reply, Compiled | Missing):
                worker.compiled = set(reply.held)  # whatever was asked, the pool learns what the worker holds
            return reply

    async def _compile(self, worker: _Worker, bundle: Compile) -> None:
        self._last_compile = bundle
        reply = await worker.request(bundle, self.limits.compile_timeout_s, self.limits.memory_bytes)
        match reply:
            case Compiled(held=held):
                worker.compiled = set(held)
                if self._warm_zygote:
                    self._teach_zygote(bundle)
            case Rejected():
                raise BundleRejected(reply)
            case Failed(message=message):
                raise WorkerFailure(EVALUATION_ERROR, message, worker_ok=True)
            case _:
                raise WorkerFailure(EVALUATION_ERROR, f"unexpected reply {type(reply).__name__} to compile")

    @contextlib.asynccontextmanager
    async def _worker(self, timeout_s: float) -> AsyncIterator[_Worker]:
        """A free worker for one request, waited for at most ``timeout_s``; replaced afterwards if it failed."""
        if self._idle is None:
            await self.start()
        assert self._idle is not None
        try:
            # A free worker at once is the common case: no timer task for it.
            worker = (
                self._idle.get_nowait()
                if not self._idle.empty()
                else await asyncio.wait_for(self._idle.get(), timeout_s)
            )
        except TimeoutError:
            metrics.child(metrics.ENGINE_BUSY, self.name).inc()
            raise WorkerFailure(
                ENGINE_BUSY, f"no Rego worker ({self.name}) became free within {timeout_s:g} s", worker_ok=True
            ) from None
        try:
            if not worker.alive():
                worker = await self._replace(worker)
            yield worker
            if not worker.baseline:
                worker.baseline = worker.resident()
        except WorkerFailure as failure:
            if not failure.worker_ok:
                worker = await self._replace(worker)
            raise
        except BundleRejected:
            raise
        except BaseException:
            # Cancelled mid-request: the worker's state is unknown, so it is not reused.
            worker = await self._replace(worker)
            raise
        finally:
            self._release(worker)

    def _release(self, worker: _Worker) -> None:
        assert self._idle is not None
        # Looked at every few requests (a /proc read each): regopy keeps ~50 kB per decision.
        grown = (
            worker.baseline
            and worker.requests % self.limits.recycle_check_every == 0
            and worker.resident() - worker.baseline > self.limits.recycle_growth
        )
        if not self._closed and worker.alive() and grown:
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
            if warm is not None and warm.key not in fresh.compiled:
                reply = await fresh.request(warm, self.limits.compile_timeout_s, self.limits.memory_bytes)
                if isinstance(reply, Compiled):
                    fresh.compiled = set(reply.held)
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
        _log.warning("Rego worker %s (%s) replaced by %s", worker.pid, self.name, fresh.pid)
        return fresh

    def _teach_zygote(self, bundle: Compile) -> None:
        """Have the zygote compile a bundle a worker compiled (so it cannot crash the zygote): forks inherit it."""
        zygote = self._zygote
        if zygote is None or not zygote.alive() or bundle.key in zygote.compiled:
            return
        zygote.compiled.add(bundle.key)  # asked once

        async def teach() -> None:
            try:
                await zygote.compile(bundle)
            except (OSError, ConnectionError, ValueError) as exc:
                _log.warning("the Rego zygote could not compile a bundle (%s); workers compile it themselves", exc)

        task = asyncio.create_task(teach())
        self._recycling.add(task)
        task.add_done_callback(self._recycling.discard)

    async def _spawn(self) -> _Worker:
        """A fresh worker: forked from the zygote when it runs, else a new interpreter."""
        env = _worker_env(self.nice)
        if self._zygote_failures < 3:
            try:
                if self._zygote is None or not self._zygote.alive():
                    if self._zygote is not None:
                        await self._zygote.close()
                    self._zygote = _Zygote()
                    await self._zygote.start(env)
                process, compiled = await self._zygote.fork()
                worker = _Worker(process)
                worker.compiled = compiled
                return worker
            except (OSError, ConnectionError, ValueError) as exc:
                self._zygote_failures += 1
                _log.warning("Rego zygote unavailable (%s): starting a worker from scratch", exc)
                if self._zygote is not None:
                    await self._zygote.close()
                    self._zygote = None
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


def _worker_env(nice: int = 0) -> dict[str, str]:
    # An empty environment: opa.runtime() would hand a policy the process environment (secrets).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": os.pathsep.join(sys.path)}
    if nice > 0:
        env[NICE_ENV] = str(nice)  # each worker lowers its own priority (and its session's) as it starts
    return env
