"""A Rego worker process: compiles bundles and answers queries with regopy, one request at a time.

regopy can segfault, hang and grow without bound (``shared/ENGINE.md``), so it only ever runs here, in a
process the service can kill. The process keeps the protocol on a private copy of stdout and points
fd 1 at /dev/null, so that Rego's ``print`` can neither corrupt the protocol nor reach the service's
log; the service starts it with an empty environment, so ``opa.runtime()`` reveals nothing.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections import OrderedDict
from typing import Any, BinaryIO

from policy_server.engine._diagnostics import parse_rego_errors
from policy_server.engine._protocol import HEADER_SIZE, decode, frame, header_length

_BUNDLE_CACHE = 4


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

    # --- requests ---------------------------------------------------------------------------

    def compile(self, message: dict[str, Any]) -> dict[str, Any]:
        key = message["key"]
        if key in self.bundles:
            self.bundles.move_to_end(key)
            return {"ok": True}
        modules = [(m[0], m[1]) for m in message["modules"]]
        builder = self._interpreter()
        try:
            for name, source in modules:
                builder.add_module(name, source)
            bundle = builder.build(message.get("query"), list(message["entrypoints"]))
        except self.regopy.RegoError as exc:
            return {"ok": False, "problems": [p.to_dict() for p in parse_rego_errors(str(exc), dict(modules))]}
        if not bundle.ok():
            return {"ok": False, "problems": [{"code": "rego_compile_error", "message": bundle.node().json()[:500]}]}
        # The bundle refers to its builder's state: keep both alive together.
        self.bundles[key] = (bundle, builder)
        while len(self.bundles) > _BUNDLE_CACHE:
            self.bundles.popitem(last=False)
        return {"ok": True}

    def evaluate(self, message: dict[str, Any]) -> dict[str, Any]:
        entry = self.bundles.get(message["key"])
        if entry is None:
            return {"ok": False, "missing": True}
        bundle = entry[0]
        if message.get("preset"):
            return self._evaluate_preset(bundle, message)
        results = []
        document = message.get("document")
        for entrypoint, value in message["calls"]:
            # Either a whole input per call, or the decision's document shared by the calls plus each
            # policy's own parameters (sent once instead of once per policy).
            value = value if document is None else {**document, "parameters": value}
            try:
                self._set_input(value)
            except (ValueError, TypeError, OverflowError, ctypes.ArgumentError, self.regopy.RegoError) as exc:
                results.append({"error_code": "evaluation_error", "error_message": f"input: {exc}"[:500]})
                continue
            impl = self.shared.rego_bundle_query_entrypoint(self.runner._impl, bundle._impl, entrypoint)
            results.append(self._outcome(impl, binding=None))
        return {"ok": True, "results": results}

    def _evaluate_preset(self, bundle: Any, message: dict[str, Any]) -> dict[str, Any]:
        """One input for every policy: each preset entrypoint puts its policy's parameters in place."""
        try:
            self._set_input(message["document"])
        except (ValueError, TypeError, OverflowError, ctypes.ArgumentError, self.regopy.RegoError) as exc:
            failure = {"error_code": "evaluation_error", "error_message": f"input: {exc}"[:500]}
            return {"ok": True, "results": [failure for _ in message["calls"]]}
        results = []
        for entrypoint in message["calls"]:
            impl = self.shared.rego_bundle_query_entrypoint(self.runner._impl, bundle._impl, entrypoint)
            results.append(self._outcome(impl, binding=None))
        return {"ok": True, "results": results}

    def _set_input(self, value: Any) -> None:
        handle = build_input(self.shared.rego, value)
        try:
            self.shared.rego_set_input(self.runner._impl, handle)
        finally:
            self.shared.rego.regoFreeInput(handle)

    def query(self, message: dict[str, Any]) -> dict[str, Any]:
        """Queries against modules without a bundle: tests and checks, each as ``x := <expr>``."""
        modules = [(m[0], m[1]) for m in message["modules"]]
        interpreter = self._interpreter()
        try:
            for name, source in modules:
                interpreter.add_module(name, source)
        except self.regopy.RegoError as exc:
            return {"ok": False, "problems": [p.to_dict() for p in parse_rego_errors(str(exc), dict(modules))]}
        if message.get("input") is not None:
            interpreter.set_input(self.regopy.Input(message["input"]))
        results = []
        for expression in message["queries"]:
            try:
                impl = self.shared.rego_query(interpreter._impl, f"x := {expression}")
            except self.regopy.RegoError as exc:
                results.append({"error_code": "rego_parse_error", "error_message": str(exc)[:500]})
                continue
            results.append(self._outcome(impl, binding="x"))
        return {"ok": True, "results": results}

    # --- outputs ----------------------------------------------------------------------------

    def _outcome(self, impl: Any, binding: str | None) -> dict[str, Any]:
        shared = self.shared
        try:
            if not shared.rego_output_ok(impl):
                code, text = self._error(shared.rego_output_node(impl))
                return {"error_code": code, "error_message": text}
            text = shared.rego_output_string(impl)
            if text == "undefined":
                return {"undefined": True}
            if text.startswith("("):
                # Some errors ("Function not found", "Recursion detected") come back as ok, as an S-expression.
                problems = parse_rego_errors(text, {}, "evaluation_error")
                return {"error_code": "evaluation_error", "error_message": problems[0].message}
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
                return {"error_code": "evaluation_error", "error_message": f"{len(data)} results, expected one"}
            data = data[0]
        if binding is None:
            expressions = data.get("expressions") or []
            return {"value": expressions[0]} if expressions else {"undefined": True}
        bindings = data.get("bindings") or {}
        return {"value": bindings[binding]} if binding in bindings else {"undefined": True}

    def _from_nodes(self, impl: Any, binding: str | None) -> dict[str, Any]:
        shared = self.shared
        if binding is None:
            node = shared.rego_output_expressions_at_index(impl, 0)
            if not node or shared.rego_node_size(node) == 0:
                return {"undefined": True}
            node = shared.rego_node_get(node, 0)
        else:
            node = shared.rego_output_binding_at_index(impl, 0, binding)
            if not node:
                return {"undefined": True}
        return {"value": _node_value(shared, node)}

    def _error(self, node: Any) -> tuple[str, str]:
        """Message and code of an error output: ``errorseq > error > (errormsg, errorast, errorcode)``."""
        shared = self.shared
        messages: list[str] = []
        code = "evaluation_error"
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


def _serve(requests: BinaryIO, replies: BinaryIO, engine: _Engine | None = None) -> None:
    while True:
        header = requests.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            return
        message = decode(requests.read(header_length(header)))
        op = message.get("op")
        if op == "ping":
            reply: dict[str, Any] = {"ok": True, "pid": os.getpid()}
        else:
            engine = engine or _Engine()
            handler = {"compile": engine.compile, "eval": engine.evaluate, "query": engine.query}.get(op)
            try:
                reply = handler(message) if handler else {"ok": False, "error": f"unknown op {op!r}"}
            except Exception as exc:  # noqa: BLE001 - reported to the service, which fails closed
                reply = {"ok": False, "problems": [{"code": "evaluation_error", "message": repr(exc)[:500]}]}
        replies.write(frame(reply))
        replies.flush()


def _silence_stdout() -> BinaryIO:
    """The original stdout for replies; fd 1 (where Rego's ``print`` writes) goes to /dev/null."""
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return replies


def main() -> None:
    """Serve requests on stdin, reply on the original stdout, and silence fd 1."""
    replies = _silence_stdout()
    _serve(sys.stdin.buffer, replies)


def zygote(control_fd: int) -> None:
    """Fork workers that start with regopy loaded and the current bundles compiled.

    A new worker process costs about 250 ms of CPU (Python, regopy, compiling the bundle); a fork of this
    process costs a few. That is what makes replacing grown workers often affordable (regopy keeps memory
    from every evaluation). Requests on ``control_fd`` (a Unix socket), each a frame: ``compile`` (a bundle
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
        header = stream.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            return
        message = decode(stream.read(header_length(header)))
        if message.get("op") == "compile":
            control.sendall(frame(engine.compile(message)))
            continue
        if message.get("op") != "fork":
            control.sendall(frame({"ok": False, "error": "unknown op"}))
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
                with os.fdopen(requests_r, "rb") as requests, os.fdopen(replies_w, "wb") as replies:
                    _serve(requests, replies, engine)
            finally:
                os._exit(0)
        os.close(requests_r)
        os.close(replies_w)
        reply = frame({"ok": True, "pid": pid, "compiled": list(engine.bundles)})
        socket.send_fds(control, [reply], [requests_w, replies_r])
        os.close(requests_w)
        os.close(replies_r)


if __name__ == "__main__":
    main()
