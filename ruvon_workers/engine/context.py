"""The context a step function receives beside the state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass
class StepContext:
    workflow_id: str
    step_name: str
    validated_input: BaseModel | None = None
    previous_step_result: Any = None
    loop_item: Any = None
    loop_index: int | None = None
    attempt: int = 1
    idempotency_key: str = ""
    workflow_type: str = ""
    user_input: dict[str, Any] = field(default_factory=dict)
