"""External services the suite uses (PostgreSQL, OPA, Chromium, …): skip locally, fail in CI, when one is missing.

``make test`` on a bare machine runs everything it can; each missing service ends the run with one line naming
it, how many tests it kept from running, and how to get it (``conftest.pytest_terminal_summary``). In CI
(``CI=true``) a missing service is a failure: CI must provide all of them.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_TAG = "missing service "


def missing(service: str, why: str, how: str) -> NoReturn:
    """Skip (locally) or fail (in CI) the current test because ``service`` is unavailable."""
    message = f"{service}: {why} ({how})"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(f"{_TAG}{message}")


def summarize(skipped_reports: list) -> list[str]:
    """One line per missing service with how many tests it skipped, then any other skip reasons."""
    services: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for report in skipped_reports:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(_TAG):
            services[reason.removeprefix(_TAG)] += 1
        else:
            others[reason] += 1
    lines = [f"{count:4d} skipped, {reason}" for reason, count in sorted(services.items())]
    lines += [f"{count:4d} skipped: {reason}" for reason, count in sorted(others.items())]
    return lines
