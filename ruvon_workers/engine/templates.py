"""``initial_data_template`` values: ``{{ expr }}`` placeholders read from the state.

Expressions use the DECISION evaluator's grammar (never ``eval``). A string that is one
placeholder keeps the expression's type (``"{{ state.amount }}"`` gives a number); a
placeholder inside longer text is formatted into it.
"""

from __future__ import annotations

import re
from typing import Any

from ..definitions.conditions import compile_expression
from ..errors import ConditionError

_WHOLE = re.compile(r"^\s*\{\{(.+?)\}\}\s*$", re.S)
_PART = re.compile(r"\{\{(.+?)\}\}", re.S)


def render_data(template: object, state: dict[str, Any], **extra: Any) -> object:
    """Render every placeholder in ``template`` (dicts and lists recursively)."""
    if isinstance(template, dict):
        return {key: render_data(value, state, **extra) for key, value in template.items()}
    if isinstance(template, list):
        return [render_data(value, state, **extra) for value in template]
    if not isinstance(template, str):
        return template
    whole = _WHOLE.match(template)
    if whole and "{{" not in whole.group(1):
        return compile_expression(whole.group(1)).evaluate(state, **extra)
    return _PART.sub(lambda m: str(compile_expression(m.group(1)).evaluate(state, **extra)),
                     template)


def template_problems(template: object, path: str = "initial_data_template"
                      ) -> list[tuple[str, str]]:
    """``(field, message)`` for each placeholder outside the grammar."""
    if isinstance(template, dict):
        return [p for key, value in template.items()
                for p in template_problems(value, f"{path}.{key}")]
    if isinstance(template, list):
        return [p for i, value in enumerate(template)
                for p in template_problems(value, f"{path}[{i}]")]
    problems: list[tuple[str, str]] = []
    if isinstance(template, str):
        for match in _PART.finditer(template):
            try:
                compile_expression(match.group(1))
            except ConditionError as exc:
                problems.append((path, f"placeholder '{{{{{match.group(1)}}}}}' is refused: "
                                       f"{exc}"))
    return problems
