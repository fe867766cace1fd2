"""Kargo's own rules for the `http` promotion step, through the tool `.ci/kargo-http-step.sh` builds.

The tool links Kargo's template engine (`pkg/expressions`) and the http step's config schema from the Kargo
release in `.ci/kargo-http-step/go.mod`, with the step runner's response rules (`http_requester.go`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.support.services import missing

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / ".ci" / "kargo-http-step"
_HOW = "`.ci/kargo-http-step.sh` builds it from the Go module proxy and prints POLICY_SERVER_TEST_KARGO_HTTP_STEP"


def _cached() -> Path:
    version = re.search(r"github\.com/akuity/kargo (v\S+)", (SOURCE / "go.mod").read_text()).group(1)
    files = [SOURCE / name for name in ("main.go", "go.mod", "go.sum")]
    digest = subprocess.run(
        ["cksum"], input=b"".join(f.read_bytes() for f in files), capture_output=True, check=True
    ).stdout.split()[0]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "policy-server"
    return cache / f"kargo-http-step-{version}-{digest.decode()}"


class KargoHttpStep:
    """Render a step config as Kargo does; judge a response as Kargo's http step does."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        done = subprocess.run([self.binary], input=json.dumps(request).encode(), capture_output=True, timeout=60)
        if done.returncode != 0:
            raise KargoError(done.stderr.decode().strip())
        return json.loads(done.stdout)

    def render(self, config: dict, ctx: dict, secrets: dict | None = None) -> dict[str, Any]:
        """``{config, schemaErrors}``: the config with every expression evaluated, and what the schema says."""
        return self._call({"render": {"config": config, "ctx": ctx, "vars": {}, "secrets": secrets or {}}})

    def judge(self, config: dict, status: int, content_type: str, body: str) -> dict[str, Any]:
        """``{status, message, terminal, outputs, retryAfter}`` of the step after this response."""
        return self._call({"judge": {"config": config, "status": status, "contentType": content_type, "body": body}})


class KargoError(RuntimeError):
    """Kargo refused the step (an expression that does not compile, a template it cannot render)."""


def kargo_http_step() -> KargoHttpStep:
    """The tool, or skip (fail in CI) saying how to build it."""
    binary = os.environ.get("POLICY_SERVER_TEST_KARGO_HTTP_STEP") or str(_cached())
    if not Path(binary).is_file():
        missing("Kargo http step tool", f"not built at {binary}", _HOW)
    return KargoHttpStep(binary)
