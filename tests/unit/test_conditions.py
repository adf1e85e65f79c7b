from __future__ import annotations

import pytest

from ruvon_workers.definitions.conditions import compile_expression
from ruvon_workers.errors import ConditionError

from ..fixtures.models import CounterState


@pytest.mark.parametrize(("expr", "expected"), [
    ("state.count > 3", True),
    ("count > 3 and label == 'x'", True),
    ("not (count < 3) or false", True),
    ("label in ['x', 'y']", True),
    ("'a' in path", False),
    ("state.path[0] == 'p'", True),
    ("state.missing is None", True),
    ("count >= -1", True),
    ("state.missing > 3", False),
])
def test_evaluates(expr: str, expected: bool) -> None:
    state = CounterState(count=5, label="x", path=["p"])
    assert bool(compile_expression(expr).evaluate(state)) is expected


@pytest.mark.parametrize("expr", [
    "__import__('os')",
    "state.__class__",
    "(lambda: 1)()",
    "count + 1",
    "[x for x in path]",
    "state.count if True else 0",
    "open('/etc/passwd')",
    "state.path[count]",
    "",
    "count >",
])
def test_refuses_anything_else(expr: str) -> None:
    with pytest.raises(ConditionError):
        compile_expression(expr)
