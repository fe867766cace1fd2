"""Examples for the API docs from the demo project (examples/kargo-demo): requests cut from its objects, and every
success response as the app answered it (``responses.json``, written by ``make examples``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from litestar.openapi.spec import Example


@cache
def load_text(name: str) -> str:
    """The text of an example file."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def load_json(name: str) -> Any:
    """An example file parsed as JSON."""
    return json.loads(load_text(name))


@dataclass
class VerbatimExample(Example):
    """An OpenAPI example whose value is shown exactly as the API answers it: Litestar's schema rendering drops
    every ``None`` inside spec objects, which would remove the ``null`` fields of a real answer (and the example
    would no longer match its schema)."""

    def to_schema(self) -> dict[str, Any]:
        rendered = super().to_schema()
        if self.value is not None:
            rendered["value"] = self.value
        return rendered
