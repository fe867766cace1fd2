"""What every command shares: the ``main`` group, settings, one database per command, and error translation.

A command raises what the rest of the code raises (``PolicyServerError``, ``SettingsError``); ``main`` turns it
into one line on stderr and an exit code, never a traceback: 1 for a refused input or request, 2 for a usage
or settings error, 3 when a dependency (the database, a server) is unavailable (worth retrying).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from policy_server import __version__
from policy_server.errors import PolicyServerError, Unavailable
from policy_server.settings import Settings, SettingsError

T = TypeVar("T")
EXIT_REFUSED, EXIT_UNAVAILABLE = 1, 3


class CommandError(click.ClickException):
    """A user-facing failure with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe(exc: PolicyServerError) -> CommandError:
    """A PolicyServerError as the message a person reads (its detail, then the first problems it lists)."""
    lines = [exc.detail]
    if len(exc.errors) > 1:  # the detail already names the first
        lines += [f"  {_problem(problem)}" for problem in exc.errors[:20]]
    if len(exc.errors) > 20:
        lines.append(f"  … and {len(exc.errors) - 20} more")
    return CommandError("\n".join(lines), EXIT_UNAVAILABLE if isinstance(exc, Unavailable) else EXIT_REFUSED)


def _problem(problem: Any) -> str:
    """One listed problem: where (item, line, field or file:line:column), then what."""
    if hasattr(problem, "file"):
        return f"{where(problem)}: {problem.code}: {problem.message}"
    places = [
        f"item {problem.index}" if problem.index is not None else "",
        f"line {problem.line}" if problem.line else "",
    ]
    place = ", ".join(p for p in places if p)
    field = f" {problem.field}:" if getattr(problem, "field", None) else ""
    return f"{place}:{field} {problem.message}" if place else f"{field.strip()} {problem.message}".strip()


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None
        except PolicyServerError as exc:
            raise describe(exc) from None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="policy-server")
@click.pass_context
def main(ctx: click.Context) -> None:
    """policy-server: policy as code for Kargo promotions."""
    if ctx.invoked_subcommand != "run":  # `run` logs at the configured level; other commands speak for themselves
        configure_logging("WARNING")


def configure_logging(level: str, fmt: str = "text") -> None:
    from policy_server.logs import configure

    configure(level, fmt)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and flags); a bad value is a usage error naming the variable."""
    return Settings.from_env(**overrides)


def with_database(action: Callable[[Any], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run ``action(database)`` on one ``Database`` for the configured store, closed afterwards."""
    return asyncio.run(open_database(settings or load_settings(), action))


async def open_database(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    from policy_server.store import Database

    database = Database(settings.effective_database_url)
    try:
        return await action(database)
    finally:
        await database.dispose()


def redact(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def where(problem: Any) -> str:
    """``file:line:column`` of a policy problem."""
    parts = [problem.file or "-"]
    if problem.line:
        parts.append(str(problem.line))
        if problem.column:
            parts.append(str(problem.column))
    return ":".join(parts)
