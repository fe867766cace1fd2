"""The CLI's HTTP client for a running policy-server: a bearer token, and refusals said so a person can act."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from policy_server.cli._base import EXIT_UNAVAILABLE, CommandError

TOKEN_HELP = "Bearer token for --url [env POLICY_SERVER_TOKEN]."
_IN_FLIGHT = 3


class Client:
    """Calls to one server's API with a token of ``role`` (named in what a 401/403 says to do)."""

    def __init__(self, url: str, token: str | None, role: str, timeout: float = 120) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.role = role
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def get_json(self, path: str) -> Any:
        return self._send("GET", path).json()

    def post_json(self, path: str, body: Any) -> Any:
        import json

        return self._send("POST", path, json.dumps(body).encode(), "application/json").json()

    def post_all(self, path: str, bodies: Iterator[bytes], content_type: str) -> Iterator[dict[str, Any]]:
        """Post each body to ``path``, a few at a time; answers in completion order. Stops at the first error
        (bodies already acknowledged stay applied)."""
        with ThreadPoolExecutor(_IN_FLIGHT) as pool:
            pending: set[Future[httpx.Response]] = set()
            for body in bodies:
                if len(pending) >= _IN_FLIGHT:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result().json() for f in done)
                pending.add(pool.submit(self._send, "POST", path, body, content_type))
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result().json() for f in done)

    def _send(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> httpx.Response:
        target = self.base + path
        headers = {"content-type": content_type} if content_type else {}
        try:
            response = self.http.request(method, target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach {target}: {exc}", EXIT_UNAVAILABLE) from None
        if response.status_code >= 300:
            raise self._refusal(target, response)
        return response

    def _refusal(self, target: str, response: httpx.Response) -> CommandError:
        status, text = response.status_code, response.text
        if status == 401:
            how = "the token was refused (unknown or revoked)" if self.token else "no token was given"
            return CommandError(
                f"{target} answered 401: {how}. Pass a {self.role} token with --token or POLICY_SERVER_TOKEN "
                f"(`policy-server tokens create --name NAME --role {self.role}` on the server makes one)"
            )
        if status == 403:
            return CommandError(f"{target} answered 403: the token may not do this (needs role {self.role}): {text}")
        return CommandError(f"{target} answered {status}: {text}", EXIT_UNAVAILABLE if status >= 500 else 1)
