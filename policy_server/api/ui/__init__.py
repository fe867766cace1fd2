"""``/ui/``: the decisions page for on-call people, served by the app (no CDN; works offline).

A read-only page over the JSON API: per namespace and Stage, the queue in Kargo's order with each Promotion's
latest decision, a timeline of decisions with the policy revisions that made them, the decision log with the
filters of ``GET /v1/decisions``, and one decision with its input and each policy's result. It takes a token
the way the docs' "Authorize" does and asks only what that token may see. The files are static; the page
builds its DOM from data with ``textContent`` (never markup), under a Content-Security-Policy of its own origin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.static_files import create_static_files_router

UI_PATH = "/ui"
STATIC = Path(__file__).parent / "static"
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _secure(response: Any) -> Any:
    response.headers.update(_HEADERS)
    return response


def ui_router() -> Any:
    """The page's static files under ``/ui`` (``/ui`` and ``/ui/`` serve the page; assets by absolute path)."""
    return create_static_files_router(
        path=UI_PATH,
        directories=[STATIC],
        html_mode=True,
        include_in_schema=False,
        name="ui",
        after_request=_secure,
    )
