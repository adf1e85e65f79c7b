"""``ExpressionEvaluator``: the base of Ruvon's expression evaluators."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class ExpressionEvaluator(ABC):
    def __init__(self, state: dict[str, Any]):
        self.state = state

    @abstractmethod
    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` over the state."""


__all__ = ["ExpressionEvaluator"]
