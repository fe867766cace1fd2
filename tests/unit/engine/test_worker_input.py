"""The worker's input builder gives Rego the same document as regopy's own ``Input``."""

from __future__ import annotations

import pytest
import regopy
from regopy import rego_shared

from policy_server.engine._worker import build_input

DOCUMENTS = [
    {},
    {"a": 1, "b": -2.5, "c": True, "d": False, "e": None, "f": "x"},
    {"nested": {"list": [1, [2, {"three": 3}], []], "empty": {}}, "unicode": "naïve ✓ \u00e9"},
    {"big": 2**63 - 1, "small": -(2**63), "zero": 0, "float": 1e-300},
    {"queue": [{"name": f"prod.{i}", "phase": "Pending", "created_at_ns": 1785542940000000000 + i} for i in range(50)]},
]


def _query(value: object, *, fast: bool) -> str:
    interpreter = regopy.Interpreter()
    if fast:
        handle = build_input(rego_shared.rego, value)
        try:
            rego_shared.rego_set_input(interpreter._impl, handle)
        finally:
            rego_shared.rego.regoFreeInput(handle)
    else:
        interpreter.set_input(regopy.Input(value))
    return str(interpreter.query("x := input"))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_same_input_as_regopy(document):
    assert _query(document, fast=True) == _query(document, fast=False)


@pytest.mark.parametrize("value", [{"n": 2**63}, {"s": {1, 2}}, {1: "non-string key"}])
def test_values_rego_cannot_take_are_refused(value):
    with pytest.raises((OverflowError, TypeError)):
        build_input(rego_shared.rego, value)
