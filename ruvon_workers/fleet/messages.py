"""The kwargs of fleet messages, checked before anything else reads them.

A message comes from any producer (or from the wire, forged): each kwarg is checked for
its type here, and a wrong one is refused with a :class:`BadMessage` that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BadMessage


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def text(field: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{field} must be a non-empty string, got {_shown(value)}")
    return value


def optional_text(field: str, value: Any) -> str | None:
    return None if value is None else text(field, value)


def integer(field: str, value: Any) -> int:
    """An integer (``True``/``False`` and ``"1"`` are not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadMessage(f"{field} must be an integer, got {_shown(value)}")
    return value


def optional_integer(field: str, value: Any) -> int | None:
    return None if value is None else integer(field, value)


def mapping(field: str, value: Any) -> dict[str, Any]:
    """A JSON object; ``None`` is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadMessage(f"{field} must be an object, got {_shown(value)}")
    return value


@dataclass(frozen=True)
class StepMessage:
    workflow_id: str
    step: str
    version: int
    branch: int | None


def step_message(kwargs: dict[str, Any], task_step: str | None) -> StepMessage:
    """The kwargs of a step message sent to the task of ``task_step`` (``None``: the
    generic ``ruvon.step``, which takes any step)."""
    message = StepMessage(
        workflow_id=text("workflow_id", kwargs.get("workflow_id")),
        step=text("step", kwargs.get("step")),
        version=integer("version", kwargs.get("version")),
        branch=optional_integer("branch", kwargs.get("branch")),
    )
    if task_step is not None and message.step != task_step:
        raise BadMessage(f"step {message.step!r} sent to the task of step {task_step!r}")
    return message
