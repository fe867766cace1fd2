"""Messages between the service and its Rego worker processes: typed, length-prefixed msgpack frames.

Every request and every reply is a tagged ``msgspec.Struct``; both ends read and write them with the
functions below and nothing else, so a reply the pool does not expect is a decoding error, not a dict
with a missing key. ``Missing`` (the worker no longer holds a bundle) is its own reply type: the pool
matches on it, recompiles and asks once more.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

import msgspec

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
MAX_MESSAGE = 256 * 1024 * 1024


class Module(msgspec.Struct, array_like=True, frozen=True):
    """One Rego file: a name (used in error locations) and its source."""

    name: str
    source: str


class ProblemMessage(msgspec.Struct, omit_defaults=True, frozen=True):
    """A problem in Rego sources, as a worker reports it."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None


class Outcome(msgspec.Struct, omit_defaults=True):
    """The result of one query: a value, undefined, or an error with a code."""

    value: Any = None
    undefined: bool = False
    error_code: str | None = None
    error_message: str | None = None


# --- requests ---------------------------------------------------------------------------------------


class Compile(msgspec.Struct, tag="compile", frozen=True):
    """Compile a bundle (modules and their entrypoints) and keep it under ``key``."""

    key: str
    modules: list[Module]
    entrypoints: list[str]


class Call(msgspec.Struct, array_like=True, frozen=True):
    """One entrypoint of a compiled bundle and the input (or the parameters, with a shared document) it sees."""

    entrypoint: str
    input: Any


class EvaluateEach(msgspec.Struct, tag="eval_each", frozen=True):
    """Query entrypoints of bundle ``key``: each call with its own input, or, when ``document`` is given, with
    ``document`` plus the call's value as ``parameters`` (the shared part is sent once)."""

    key: str
    calls: list[Call]
    document: Any = None


class EvaluatePreset(msgspec.Struct, tag="eval_preset", frozen=True):
    """Query preset entrypoints of bundle ``key`` (each with its policy's parameters compiled in) on one input."""

    key: str
    document: Any
    entrypoints: list[str]


class Query(msgspec.Struct, tag="query", frozen=True):
    """Expressions over modules without a bundle (tests), each evaluated as ``x := <expression>``."""

    modules: list[Module]
    queries: list[str]
    input: Any = None


class Check(msgspec.Struct, tag="check", frozen=True):
    """The strict compile check of a policy's modules: parse, safety, types, recursion, conflicts, our rules."""

    modules: list[Module]
    policy_files: list[str] = msgspec.field(default_factory=list)
    """The modules that are policies (they must define ``deny``); the others are tests or helpers."""
    reserved: list[str] = msgspec.field(default_factory=list)
    """Packages the modules may neither declare nor reach (generated ones, other policies')."""


class Ping(msgspec.Struct, tag="ping", frozen=True):
    """Are you there?"""


class Fork(msgspec.Struct, tag="fork", frozen=True):
    """(Zygote only) fork a worker that starts with every bundle compiled so far."""


Request = Compile | EvaluateEach | EvaluatePreset | Query | Check | Ping | Fork


# --- replies ----------------------------------------------------------------------------------------


class Compiled(msgspec.Struct, tag="compiled", frozen=True):
    """The bundle is compiled; ``held`` is every bundle key the worker holds now (older ones were dropped)."""

    held: list[str]


class Rejected(msgspec.Struct, tag="rejected", frozen=True):
    """The modules do not parse or compile (or fail the check): every problem found."""

    problems: list[ProblemMessage]


class Results(msgspec.Struct, tag="results", frozen=True):
    """One outcome per call, entrypoint or query, in order."""

    results: list[Outcome]


class Missing(msgspec.Struct, tag="missing", frozen=True):
    """The worker does not hold bundle ``key`` (never compiled, or dropped for newer ones): compile it first."""

    key: str
    held: list[str]


class Failed(msgspec.Struct, tag="failed", frozen=True):
    """The worker could not handle the request (a bug, or a request it does not know)."""

    message: str


class Pong(msgspec.Struct, tag="pong", frozen=True):
    """The worker's process id."""

    pid: int


class Forked(msgspec.Struct, tag="forked", frozen=True):
    """(Zygote) the new worker's pid and the bundles it starts with; its pipes travel as SCM_RIGHTS."""

    pid: int
    held: list[str]


Reply = Compiled | Rejected | Results | Missing | Failed | Pong | Forked


_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(Request)
_replies = msgspec.msgpack.Decoder(Reply)


def frame(message: Request | Reply) -> bytes:
    """A message ready to write: 4-byte big-endian length, then msgpack.

    Raises ``OverflowError``/``TypeError`` when the message cannot be encoded (an integer beyond 64 bits).
    """
    payload = _encoder.encode(message)
    return _HEADER.pack(len(payload)) + payload


def header_length(header: bytes) -> int:
    """The payload length announced by a 4-byte header."""
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ValueError(f"message of {length} bytes is over the limit")
    return length


def decode_request(payload: bytes) -> Request:
    """A request, as a worker receives it."""
    return _requests.decode(payload)


def decode_reply(payload: bytes) -> Reply:
    """A reply, as the service receives it."""
    return _replies.decode(payload)


def read_request(stream: BinaryIO) -> Request | None:
    """The next request on a blocking stream (None at its end)."""
    header = stream.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return None
    return decode_request(stream.read(header_length(header)))


def write(stream: BinaryIO, message: Request | Reply) -> None:
    """Write one message to a blocking stream."""
    stream.write(frame(message))
    stream.flush()
