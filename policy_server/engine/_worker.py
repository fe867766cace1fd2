"""A Rego worker process: compiles bundles and answers queries with regopy, one request at a time.

regopy can segfault, hang and grow without bound (``shared/ENGINE.md``), so it only ever runs here, in a
process the service can kill. The process keeps the protocol on a private copy of stdout and points
fd 1 at /dev/null, so that Rego's ``print`` can neither corrupt the protocol nor reach the service's
log; the service starts it with an empty environment, so ``opa.runtime()`` reveals nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, BinaryIO

from policy_server.engine._codes import EVALUATION_ERROR
from policy_server.engine._diagnostics import parse_rego_errors
from policy_server.engine._protocol import (
    Check,
    Compile,
    Compiled,
    EvaluateEach,
    EvaluatePreset,
    Failed,
    Fork,
    Forked,
    Missing,
    Outcome,
    Ping,
    Pong,
    ProblemMessage,
    Query,
    Rejected,
    Reply,
    Request,
    Results,
    frame,
    read_request,
    write,
)

BUNDLE_SLOTS = 4
"""Compiled bundles a worker keeps (the active set and the few before it); older ones are dropped and the
pool, told by every ``Compiled`` and ``Missing`` reply what the worker holds, compiles them again."""


class _Engine:
    """regopy state of this process: compiled bundles by key, and one interpreter that runs them."""

    def __init__(self) -> None:
        import regopy
        from regopy import rego_shared

        self.regopy = regopy
        self.shared = rego_shared
        self.runner = self._interpreter()
        self.bundles: OrderedDict[str, tuple[Any, Any]] = OrderedDict()

    def _interpreter(self) -> Any:
        interpreter = self.regopy.Interpreter()
        interpreter.log_level = self.regopy.LogLevel.NONE
        # Builtin errors stay undefined, as in OPA's default (strict-builtin-errors off): same verdicts.
        return interpreter

    def handle(self, request: Request) -> Reply:
        """Answer one request."""
        match request:
            case Compile():
                return self.compile(request)
            case EvaluateEach():
                return self.evaluate_each(request)
            case EvaluatePreset():
                return self.evaluate_preset(request)
            case Query():
                return self.query(request)
            case Check():
                return self.check(request)
            case Ping():
                return Pong(os.getpid())
            case Fork():
                return Failed("only the zygote forks")

    # --- requests ---------------------------------------------------------------------------

    def compile(self, request: Compile) -> Compiled | Rejected:
        key = request.key
        if key in self.bundles:
            self.bundles.move_to_end(key)
            return Compiled(list(self.bundles))
        modules = [(m.name, m.source) for m in request.modules]
        builder = self._interpreter()
        try:
            for name, source in modules:
                builder.add_module(name, source)
            bundle = builder.build(None, list(request.entrypoints))
        except self.regopy.RegoError as exc:
            return Rejected(_problems(parse_rego_errors(str(exc), dict(modules))))
        if not bundle.ok():
            return Rejected([ProblemMessage("rego_compile_error", bundle.node().json()[:500])])
        # The bundle refers to its builder's state: keep both alive together.
        self.bundles[key] = (bundle, builder)
        while len(self.bundles) > BUNDLE_SLOTS:
            self.bundles.popitem(last=False)
        return Compiled(list(self.bundles))

    def _bundle(self, key: str) -> Any | None:
        entry = self.bundles.get(key)
        return None if entry is None else entry[0]

    def evaluate_each(self, request: EvaluateEach) -> Results | Missing:
        bundle = self._bundle(request.key)
        if bundle is None:
            return Missing(request.key, list(self.bundles))
        results = []
        document = request.document
        for call in request.calls:
            # Either a whole input per call, or the decision's document shared by the calls plus each
            # policy's own parameters (sent once instead of once per policy).
            value = call.input if document is None else {**document, "parameters": call.input}
            try:
                self._set_input(value)
            except (ValueError, TypeError, OverflowError, ctypes.ArgumentError, self.regopy.RegoError) as exc:
                results.append(Outcome(error_code=EVALUATION_ERROR, error_message=f"input: {exc}"[:500]))
                continue
            impl = self.shared.rego_bundle_query_entrypoint(self.runner._impl, bundle._impl, call.entrypoint)
            results.append(self._outcome(impl, binding=None))
        return Results(results)

    def evaluate_preset(self, request: EvaluatePreset) -> Results | Missing:
        """One input for every policy: each preset entrypoint puts its policy's parameters in place."""
        bundle = self._bundle(request.key)
        if bundle is None:
            return Missing(request.key, list(self.bundles))
        try:
            self._set_input(request.document)
        except (ValueError, TypeError, OverflowError, ctypes.ArgumentError, self.regopy.RegoError) as exc:
            failure = Outcome(error_code=EVALUATION_ERROR, error_message=f"input: {exc}"[:500])
            return Results([failure for _ in request.entrypoints])
        results = []
        for entrypoint in request.entrypoints:
            impl = self.shared.rego_bundle_query_entrypoint(self.runner._impl, bundle._impl, entrypoint)
            results.append(self._outcome(impl, binding=None))
        return Results(results)

    def _set_input(self, value: Any) -> None:
        handle = build_input(self.shared.rego, value)
        try:
            self.shared.rego_set_input(self.runner._impl, handle)
        finally:
            self.shared.rego.regoFreeInput(handle)

    def query(self, request: Query) -> Results | Rejected:
        """Queries against modules without a bundle: tests and checks, each as ``x := <expr>``."""
        modules = [(m.name, m.source) for m in request.modules]
        interpreter = self._interpreter()
        try:
            for name, source in modules:
                interpreter.add_module(name, source)
        except self.regopy.RegoError as exc:
            return Rejected(_problems(parse_rego_errors(str(exc), dict(modules))))
        if request.input is not None:
            interpreter.set_input(self.regopy.Input(request.input))
        results = []
        for expression in request.queries:
            try:
                impl = self.shared.rego_query(interpreter._impl, f"x := {expression}")
            except self.regopy.RegoError as exc:
                results.append(Outcome(error_code="rego_parse_error", error_message=str(exc)[:500]))
                continue
            results.append(self._outcome(impl, binding="x"))
        return Results(results)

    def check(self, request: Check) -> Rejected | Compiled:
        """The strict compile check, then regopy's own parse and compile of the same modules."""
        from policy_server.engine.rego import check as strict_check

        modules = {m.name: m.source for m in request.modules}
        available = self._available_builtin
        problems = strict_check(modules, policy_files=request.policy_files, reserved=request.reserved,
                                available=available)  # fmt: skip
        if problems:
            return Rejected(_problems(problems))
        # regopy compiles what decisions will compile: the policy modules (tests run apart, crash by crash).
        compiled = {name: modules[name] for name in request.policy_files if name in modules} or modules
        builder = self._interpreter()
        try:
            for name, source in compiled.items():
                builder.add_module(name, source)
            bundle = builder.build("x := true", [])
        except self.regopy.RegoError as exc:
            return Rejected(_problems(parse_rego_errors(str(exc), modules)))
        if not bundle.ok():
            return Rejected([ProblemMessage("rego_compile_error", bundle.node().json()[:500])])
        return Compiled([])

    def _available_builtin(self, name: str) -> bool:
        return bool(self.runner.is_builtin(name))

    # --- outputs ----------------------------------------------------------------------------

    def _outcome(self, impl: Any, binding: str | None) -> Outcome:
        shared = self.shared
        try:
            if not shared.rego_output_ok(impl):
                code, text = self._error(shared.rego_output_node(impl))
                return Outcome(error_code=code, error_message=text)
            text = shared.rego_output_string(impl)
            if text == "undefined":
                return Outcome(undefined=True)
            if text.startswith("("):
                # Some errors ("Function not found", "Recursion detected") come back as ok, as an S-expression.
                problems = parse_rego_errors(text, {}, "evaluation_error")
                return Outcome(error_code=EVALUATION_ERROR, error_message=problems[0].message)
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                # regopy can print a string unescaped (sprintf of a string a comprehension made): read
                # the value from the output's nodes instead of its JSON text.
                return self._from_nodes(impl, binding)
        finally:
            shared.rego_free_output(impl)
        if isinstance(data, list):
            if len(data) != 1:
                return Outcome(error_code=EVALUATION_ERROR, error_message=f"{len(data)} results, expected one")
            data = data[0]
        if binding is None:
            expressions = data.get("expressions") or []
            return Outcome(value=expressions[0]) if expressions else Outcome(undefined=True)
        bindings = data.get("bindings") or {}
        return Outcome(value=bindings[binding]) if binding in bindings else Outcome(undefined=True)

    def _from_nodes(self, impl: Any, binding: str | None) -> Outcome:
        shared = self.shared
        if binding is None:
            node = shared.rego_output_expressions_at_index(impl, 0)
            if not node or shared.rego_node_size(node) == 0:
                return Outcome(undefined=True)
            node = shared.rego_node_get(node, 0)
        else:
            node = shared.rego_output_binding_at_index(impl, 0, binding)
            if not node:
                return Outcome(undefined=True)
        return Outcome(value=_node_value(shared, node))

    def _error(self, node: Any) -> tuple[str, str]:
        """Message and code of an error output: ``errorseq > error > (errormsg, errorast, errorcode)``."""
        shared = self.shared
        messages: list[str] = []
        code = EVALUATION_ERROR
        for i in range(shared.rego_node_size(node)):
            error = shared.rego_node_get(node, i)
            size = shared.rego_node_size(error)
            if size == 0:
                continue
            messages.append(_value(shared, shared.rego_node_get(error, 0)))
            last = _value(shared, shared.rego_node_get(error, size - 1))
            if last:
                code = last
        return code, "; ".join(m for m in messages if m) or "evaluation failed"


def build_input(lib: Any, value: Any) -> Any:
    """A rego input handle for a JSON-shaped value (free it with ``regoFreeInput``).

    The same stack of ``regoInput*`` calls as ``regopy.Input``, dispatched on exact types: a decision's
    input is built for every policy, and the stock builder's abstract-type checks cost about half of it.
    """
    handle = lib.regoNewInput()
    put_str, put_int, put_float = lib.regoInputString, lib.regoInputInt, lib.regoInputFloat
    put_bool, put_null, put_item = lib.regoInputBoolean, lib.regoInputNull, lib.regoInputObjectItem
    put_object, put_array = lib.regoInputObject, lib.regoInputArray

    def add(item: Any) -> int:
        kind = type(item)
        if kind is str:
            return put_str(handle, item.encode())
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    raise TypeError(f"object keys must be strings, got {type(key).__name__}")
                if put_str(handle, key.encode()) or add(child) or put_item(handle):
                    return 1
            return put_object(handle, len(item))
        if kind is list or kind is tuple:
            for child in item:
                if add(child):
                    return 1
            return put_array(handle, len(item))
        if kind is bool:
            return put_bool(handle, item)
        if kind is int:
            if not -(2**63) <= item < 2**63:
                raise OverflowError(f"integer {item} does not fit in 64 bits")
            return put_int(handle, item)
        if kind is float:
            return put_float(handle, item)
        if item is None:
            return put_null(handle)
        raise TypeError(f"cannot give a {kind.__name__} to Rego")

    try:
        if add(value):
            raise ValueError("the engine refused the input")
    except BaseException:
        lib.regoFreeInput(handle)
        raise
    return handle


def _node_value(shared: Any, node: Any) -> Any:
    """A Python value from a regopy node tree (the JSON text of the same value may be malformed)."""
    kinds = shared.NodeKind
    kind = shared.rego_node_type(node)
    size = shared.rego_node_size(node)
    if kind in (kinds.Term, kinds.Scalar, kinds.Terms):
        return _node_value(shared, shared.rego_node_get(node, 0)) if size else None
    if kind in (kinds.Array, kinds.Set):
        return [_node_value(shared, shared.rego_node_get(node, i)) for i in range(size)]
    if kind == kinds.Object:
        out = {}
        for i in range(size):
            item = shared.rego_node_get(node, i)
            key = _node_value(shared, shared.rego_node_get(item, 0))
            out[key if isinstance(key, str) else json.dumps(key)] = _node_value(shared, shared.rego_node_get(item, 1))
        return out
    text = shared.rego_node_value(node)
    if kind == kinds.Int:
        return int(text)
    if kind == kinds.Float:
        return float(text)
    if kind in (kinds.Boolean, kinds.True_, kinds.False_):
        return text == "true"
    if kind == kinds.Null:
        return None
    try:
        return json.loads(f'"{text}"')
    except json.JSONDecodeError:
        return text


def _value(shared: Any, node: Any) -> str:
    try:
        return shared.rego_node_value(node) or ""
    except Exception:  # noqa: BLE001 - a node without a value
        return ""


def _problems(problems: Sequence[Any]) -> list[ProblemMessage]:
    return [ProblemMessage(p.code, p.message, p.file, p.line, p.column) for p in problems]


def _serve(requests: BinaryIO, replies: BinaryIO, engine: _Engine | None = None) -> None:
    while True:
        request = read_request(requests)
        if request is None:
            return
        if isinstance(request, Ping):
            reply: Reply = Pong(os.getpid())
        else:
            engine = engine or _Engine()
            try:
                reply = engine.handle(request)
            except Exception as exc:  # noqa: BLE001 - reported to the service, which fails closed
                reply = Failed(repr(exc)[:500])
        write(replies, reply)


def _silence_stdout() -> BinaryIO:
    """The original stdout for replies; fd 1 (where Rego's ``print`` writes) goes to /dev/null."""
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return replies


NICE_ENV = "POLICY_SERVER_WORKER_NICE"


def _lower_priority() -> None:
    """Run below decisions when the pool asks (authoring). A worker is a session of its own, so with the kernel's
    autogroup scheduling its niceness alone would compare only within that session: the autogroup's is set too."""
    nice = int(os.environ.get(NICE_ENV) or 0)
    if nice <= 0:
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as autogroup:
        autogroup.write(str(nice))


def main() -> None:
    """Serve requests on stdin, reply on the original stdout, and silence fd 1."""
    _lower_priority()
    replies = _silence_stdout()
    _serve(sys.stdin.buffer, replies)


def zygote(control_fd: int) -> None:
    """Fork workers that start with regopy loaded and the current bundles compiled.

    A new worker process costs about 250 ms of CPU (Python, regopy, compiling the bundle); a fork of this
    process costs a few. That is what makes replacing grown workers affordable (the safeguard against
    memory a worker keeps). Requests on ``control_fd`` (a Unix socket), each a frame: ``compile`` (a bundle
    a worker compiled first: forks inherit it), ``fork`` (the reply carries the new worker's request and
    reply pipes as SCM_RIGHTS). This process never evaluates; its children are reaped by the kernel.
    """
    import signal
    import socket

    _silence_stdout().close()
    control = socket.socket(fileno=control_fd)
    engine = _Engine()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    stream = control.makefile("rb")
    while True:
        request = read_request(stream)
        if request is None:
            return
        if isinstance(request, Compile):
            control.sendall(frame(engine.compile(request)))
            continue
        if not isinstance(request, Fork):
            control.sendall(frame(Failed(f"the zygote does not answer {type(request).__name__}")))
            continue
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                stream.close()
                control.close()
                os.close(requests_w)
                os.close(replies_r)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setsid()
                _lower_priority()
                with os.fdopen(requests_r, "rb") as requests, os.fdopen(replies_w, "wb") as replies:
                    _serve(requests, replies, engine)
            finally:
                os._exit(0)
        os.close(requests_r)
        os.close(replies_w)
        socket.send_fds(control, [frame(Forked(pid, list(engine.bundles)))], [requests_w, replies_r])
        os.close(requests_w)
        os.close(replies_r)


if __name__ == "__main__":
    main()
