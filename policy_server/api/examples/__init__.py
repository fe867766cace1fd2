"""Request examples for the API docs, cut from the shared Kargo fixtures (kargo-demo project)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_text(name: str) -> str:
    """The text of an example file."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def load_json(name: str) -> Any:
    """An example file parsed as JSON."""
    return json.loads(load_text(name))
