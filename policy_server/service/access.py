"""Who may do what: bearer tokens, roles, namespace scopes, and the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass

from policy_server.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from policy_server.store import AccessStore, Token

_log = logging.getLogger("policy_server.access")
ROLES = ("reader", "controller", "policy-author", "admin")
# What each role may do: a route declares the capability it needs.
GRANTS = {
    "read": {"reader", "controller", "policy-author", "admin"},
    "control": {"controller", "admin"},
    "author": {"policy-author", "admin"},
    "admin": {"admin"},
}
TOKEN_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
BOOTSTRAP_NAME = "bootstrap-admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a token's name, role and namespaces (None: every namespace)."""

    name: str
    role: str
    namespaces: frozenset[str] | None = None

    def may(self, capability: str) -> bool:
        """Whether the role grants ``capability`` (read, control, author, admin)."""
        return self.role in GRANTS[capability]

    def sees(self, namespace: str | None) -> bool:
        """Whether the token covers ``namespace``."""
        return self.namespaces is None or (namespace is not None and namespace in self.namespaces)

    def require_namespace(self, namespace: str | None) -> None:
        """Raise Forbidden unless the token covers ``namespace``."""
        if not self.sees(namespace):
            raise Forbidden(f"token {self.name!r} is limited to namespaces {sorted(self.namespaces or [])}")

    def require_unscoped(self, what: str) -> None:
        """Raise Forbidden for a namespace-limited token: ``what`` affects every namespace."""
        if self.namespaces is not None:
            raise Forbidden(f"{what} affects every namespace: it needs a token that is not limited to namespaces")


ANONYMOUS_ADMIN = Principal("anonymous", "admin", None)


def token_id(secret: str) -> str:
    """Where a token's row is found: derived from the whole token, so any bootstrap string works."""
    return hashlib.sha256(b"policy-server-token-id:" + secret.encode()).hexdigest()[:26]


def secret_hash(secret: str) -> str:
    """What is stored instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


class AccessService:
    """Authenticates bearer tokens, creates and revokes them, and records the audit trail."""

    def __init__(self, store: AccessStore, *, enabled: bool = True, cache_s: float = 2.0) -> None:
        self.store = store
        self.enabled = enabled
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lookups: dict[str, asyncio.Future[Principal]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <token>`` header; Unauthorized otherwise."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("send `Authorization: Bearer <token>` (create one with `policy-server tokens create`)")
        secret = authorization[7:].strip()
        key = token_id(secret)
        cached = self._cache.get(key)
        if cached is not None:
            age = time.monotonic() - cached[0]
            if age < self.cache_s:
                if age >= self.cache_s / 2:
                    # Read the row again ahead of expiry, answering from the cache meanwhile: under load the
                    # requests in flight never all wait for one lookup (a revoked token still ends within cache_s).
                    self._start_lookup(key, secret).add_done_callback(_retrieved)
                return cached[1]
        # One lookup per token at a time: when the cached principal expires under load, every request in flight
        # would otherwise read the same row at once (that stall was the decisions' p99).
        return await asyncio.shield(self._start_lookup(key, secret))

    def _start_lookup(self, key: str, secret: str) -> asyncio.Future[Principal]:
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = asyncio.ensure_future(self._lookup(key, secret))
            lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
        return lookup

    async def _lookup(self, key: str, secret: str) -> Principal:
        started = time.monotonic()
        token = await self.store.token(key)
        # Compare the full hashes in constant time, whatever was found.
        expected = token.secret_hash if token is not None else "0" * 64
        if not hmac.compare_digest(expected, secret_hash(secret)) or token is None or token.revoked_at is not None:
            _log.warning("rejected a bearer token (id %s): unknown or revoked", key[:8])
            self._cache.pop(key, None)
            raise Unauthorized("the token is unknown or revoked")
        scope = frozenset(token.namespaces) if token.namespaces is not None else None
        principal = Principal(token.name, token.role, scope)
        self._cache[key] = (started, principal)  # valid for cache_s from before the row was read
        return principal

    async def create_token(
        self, name: str, role: str, namespaces: list[str] | None, actor: str, secret: str | None = None
    ) -> tuple[Token, str]:
        """A new token; the secret is returned once and never stored."""
        if not TOKEN_NAME.match(name):
            raise InvalidInput("a token name is 1-63 lower-case letters, digits and dashes")
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if namespaces is not None and not all(isinstance(n, str) and n for n in namespaces):
            raise InvalidInput("namespaces must be non-empty names")
        secret = secret or f"pst_{secrets.token_urlsafe(32)}"
        token = await self.store.create_token(name, role, namespaces, secret_hash(secret), actor, token_id(secret))
        return token, secret

    async def revoke(self, name: str, actor: str) -> Token:
        """Revoke a token by name (effective within ``cache_s`` on every replica)."""
        token = await self.store.revoke_token(name, actor)
        if token is None:
            raise NotFound(f"no live token named {name!r}")
        self._cache.pop(token.id, None)
        return token

    async def bootstrap(self, secret: str | None) -> str | None:
        """With no live token, create an admin token (from ``secret`` if given); returns a generated secret."""
        if not self.enabled or await self.store.live_tokens() > 0:
            return None
        try:
            _, created = await self.create_token(BOOTSTRAP_NAME, "admin", None, "policy-server", secret)
        except Exception:  # noqa: BLE001 - another process bootstrapped first
            return None
        return None if secret else created


__all__ = ["ANONYMOUS_ADMIN", "GRANTS", "ROLES", "AccessService", "Forbidden", "Principal", "Unauthorized"]


def _retrieved(lookup: asyncio.Future[Principal]) -> None:
    """A lookup nobody awaits: its failure is seen by the next request (revoked: no cached principal)."""
    if not lookup.cancelled():
        lookup.exception()
