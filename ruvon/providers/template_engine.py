"""``TemplateEngine``: the base of Ruvon's template engines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class TemplateEngine(ABC):
    def __init__(self, context: dict[str, Any]):
        self.context = context

    @abstractmethod
    def render(self, template: Any) -> Any:
        """``template`` rendered with the context."""

    @abstractmethod
    def render_string_template(self, template: str, context: dict[str, Any]) -> str:
        """One template string rendered with ``context``."""


__all__ = ["TemplateEngine"]
