"""``SimpleExpressionEvaluator``: conditions over a state dict, never ``eval``.

Routes, LOOP conditions and templates in a workflow are evaluated by the engine's own
restricted evaluator whatever class a builder is given; this class is that evaluator in
Ruvon's shape, for programs that use it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruvon_workers.definitions.conditions import compile_expression
from ruvon_workers.errors import ConditionError


class SimpleExpressionEvaluator:
    def __init__(self, state: Mapping[str, Any]):
        self.state = dict(state)

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (``None`` when it cannot be evaluated)."""
        try:
            return compile_expression(expression).evaluate(self.state)
        except ConditionError:
            return None


__all__ = ["SimpleExpressionEvaluator"]
