"""OPA's own verdict on a policy: ``opa check --strict`` and ``opa test`` with the real binary, in a scratch folder."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from policy_server.engine._diagnostics import Problem
from policy_server.engine._model import PolicyCode, TestOutcome
from policy_server.engine._protocol import Module


class OpaCli:
    """Runs the ``opa`` binary on a policy's files (nothing is loaded into any server)."""

    def __init__(self, binary: str, *, timeout_s: float = 60.0) -> None:
        self.binary = binary
        self.timeout_s = timeout_s

    async def check(self, modules: list[Module]) -> list[Problem]:
        """Parse and compile errors by OPA in strict mode, with file, line and column."""
        with tempfile.TemporaryDirectory(prefix="policy-check-") as folder:
            files = _write(Path(folder), modules)
            status, out, err = await self._run("check", "--strict", "--format", "json", *files, cwd=folder)
        if status == 0:
            return []
        try:
            # `opa check --format json` writes its report to stderr.
            errors = json.loads(err.strip() or out.strip() or "{}").get("errors", [])
        except json.JSONDecodeError:
            return [Problem("opa_check", (err or out).strip()[:500])]
        return [
            Problem(
                f"opa_{e.get('code', 'error')}",
                f"OPA: {e.get('message', '')}",
                _name(modules, (e.get("location") or {}).get("file")),
                (e.get("location") or {}).get("row"),
                (e.get("location") or {}).get("col"),
            )
            for e in errors
        ] or [Problem("opa_check", (err or out).strip()[:500])]

    async def test(self, code: PolicyCode) -> list[TestOutcome]:
        """Every ``test_*`` rule as OPA runs it (``opa test``)."""
        modules = code.modules(with_tests=True)
        with tempfile.TemporaryDirectory(prefix="policy-test-") as folder:
            files = _write(Path(folder), modules)
            _, out, err = await self._run("test", "--format", "json", *files, cwd=folder)
        try:
            results = json.loads(out or "[]")
        except json.JSONDecodeError:
            return [TestOutcome(code.policy_id, "(opa test)", code.filename, "error", (err or out).strip()[:500])]
        outcomes = []
        for r in results if isinstance(results, list) else []:
            location = r.get("location") or {}
            status = "error" if r.get("error") else "fail" if r.get("fail") else "pass"
            message = json.dumps(r["error"])[:300] if r.get("error") else None
            outcomes.append(
                TestOutcome(
                    code.policy_id,
                    r.get("name", "?"),
                    _name(modules, location.get("file")) or code.filename,
                    status,
                    message,
                    (r.get("duration") or 0) / 1e6,
                    location.get("row"),
                )
            )
        return outcomes

    async def _run(self, *args: str, cwd: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
            preexec_fn=_lower_priority,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            return 1, "", f"opa {args[0]} did not finish within {self.timeout_s:g} s"
        return process.returncode or 0, out.decode(), err.decode()


def _write(folder: Path, modules: list[Module]) -> list[str]:
    names = []
    for module in modules:
        local = module.name.replace("/", "__")
        (folder / local).write_text(module.source)
        names.append(local)
    return names


def _name(modules: list[Module], local: str | None) -> str | None:
    if not local:
        return None
    for module in modules:
        if module.name.replace("/", "__") == Path(local).name:
            return module.name
    return local


def _lower_priority() -> None:
    # Authoring work: OPA's check and tests run below decisions.
    os.nice(10)
