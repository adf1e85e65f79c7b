"""Typed models of the Ruvon-compatible YAML schema."""

from __future__ import annotations

import enum
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .conditions import Expression


class StepType(enum.StrEnum):
    STANDARD = "STANDARD"
    COMPENSATABLE = "COMPENSATABLE"
    ASYNC = "ASYNC"
    DECISION = "DECISION"
    PARALLEL = "PARALLEL"
    HTTP = "HTTP"
    LOOP = "LOOP"
    FIRE_AND_FORGET = "FIRE_AND_FORGET"
    CRON_SCHEDULE = "CRON_SCHEDULE"
    HUMAN_IN_LOOP = "HUMAN_IN_LOOP"


class _Model(BaseModel):
    # Ruvon files may carry fields this engine does not use; keep them, do not fail.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RetryPolicy(_Model):
    max_attempts: int = Field(default=1, ge=1)
    delay_seconds: float = Field(default=1.0, ge=0)
    backoff: float = Field(default=2.0, ge=1.0)
    max_delay_seconds: float = Field(default=300.0, ge=0)
    jitter: bool = True

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        try:
            delay = self.delay_seconds * self.backoff ** max(attempt - 1, 0)
        except OverflowError:  # thousands of attempts: long past the cap
            delay = self.max_delay_seconds
        delay = min(delay, self.max_delay_seconds)
        if self.jitter and delay > 0:
            # "Full jitter" keeps a fleet of retries from arriving in lockstep.
            delay = random.uniform(delay / 2, delay)
        return delay


class Route(_Model):
    """``{condition, next_step}`` (Ruvon's spelling) or ``{condition, target}``; or
    ``{default}``."""

    condition: str | None = None
    target: str | None = None
    next_step: str | None = None
    default: str | None = None


class ParallelTask(_Model):
    """A PARALLEL task: ``{name, function}`` (Ruvon's key) or ``{name, function_path}``."""

    name: str
    function_path: str

    @model_validator(mode="before")
    @classmethod
    def _function_is_function_path(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if "function" not in value:
            if "function_path" not in value:
                raise ValueError("a task needs 'function' (or 'function_path')")
            return value
        given = value.get("function_path")
        if given is not None and given != value["function"]:
            raise ValueError(f"a task names two functions ('function: {value['function']}', "
                             f"'function_path: {given}'): give one")
        return {**value, "function_path": value["function"]}


class InjectionRule(_Model):
    """``dynamic_injection`` rule: when the state's ``condition_key`` matches, insert
    ``steps_to_insert`` after the current step.

    It matches when the value equals ``value_match``; else when it is not ``value_is_not``
    (a list: none of its values, as on Ruvon)."""

    condition_key: str
    value_match: Any = None
    value_is_not: Any = None
    action: str = "INSERT_AFTER_CURRENT"
    steps_to_insert: list[str] = Field(default_factory=list)  # names, once loaded

    def matches(self, state: dict[str, Any]) -> bool:
        value: Any = state
        for part in self.condition_key.removeprefix("state.").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if "value_match" in self.model_fields_set:
            return bool(value == self.value_match)
        if isinstance(self.value_is_not, list):
            return value not in self.value_is_not
        return bool(value != self.value_is_not)


class StepDefinition(_Model):
    name: str
    type: StepType = StepType.STANDARD
    description: str | None = None
    function: str | None = None
    compensate_function: str | None = None
    input_model: str | None = None
    required_input: list[str] = Field(default_factory=list)
    automate_next: bool | None = None
    dependencies: list[str] = Field(default_factory=list)
    dynamic_injection: dict[str, Any] | None = None
    routes: list[Route] = Field(default_factory=list)
    # PARALLEL
    tasks: list[ParallelTask] = Field(default_factory=list)
    merge_strategy: str = "SHALLOW"
    merge_conflict_behavior: str = "PREFER_NEW"
    merge_function_path: str | None = None
    allow_partial_success: bool = False
    timeout_seconds: float | None = None
    iterate_over: str | None = None
    task_function: str | None = None
    item_var_name: str | None = None
    batch_size: int | None = None
    max_branches: int | None = None  # unset: RUVON_MAX_BRANCHES (default 1000)
    # HTTP
    http_config: dict[str, Any] | None = None
    output_key: str | None = None
    includes: list[str] = Field(default_factory=list)
    # LOOP
    mode: str | None = None
    while_condition: str | None = None
    max_iterations: int | None = None
    loop_body: list[dict[str, Any]] = Field(default_factory=list)
    # FIRE_AND_FORGET / CRON_SCHEDULE
    target_workflow_type: str | None = None
    initial_data_template: dict[str, Any] | None = None
    schedule_name: str | None = None
    cron_expression: str | None = None
    schedule: str | None = None  # Ruvon's key for cron_expression
    # Fleet extensions
    queue: str | None = None
    priority: int | None = Field(default=None, ge=0, le=9)
    retry_policy: RetryPolicy | None = None
    time_limit_seconds: float | None = Field(default=None, gt=0)
    rate_limit: str | None = None
    #: ``false``: the step always runs as its own task, never inside the task of the
    #: step before it (``RUVON_INLINE_STEPS``), for a step that must be isolated.
    inline: bool | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _upper_type(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("merge_strategy", "merge_conflict_behavior", mode="before")
    @classmethod
    def _merge_spelling(cls, value: Any) -> Any:
        """Any case (Ruvon writes ``shallow``, its docs ``SHALLOW``); ``PREFER_OLD`` is
        ``PREFER_EXISTING``."""
        if not isinstance(value, str):
            return value
        value = value.strip().upper()
        return "PREFER_EXISTING" if value == "PREFER_OLD" else value

    @field_validator("required_input", "dependencies", "includes", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _schedule_is_cron_expression(self) -> StepDefinition:
        if self.cron_expression is None:
            self.cron_expression = self.schedule
        return self


class WorkflowDefinition:
    """A loaded, validated workflow: steps in order plus resolved callables."""

    def __init__(
        self,
        *,
        workflow_type: str,
        workflow_version: str,
        description: str,
        state_model: type[BaseModel],
        state_model_path: str,
        saga_enabled: bool,
        steps: list[StepDefinition],
        source_file: str,
        functions: dict[str, Any],
        input_models: dict[str, type[BaseModel]],
        routes: dict[str, list[tuple[Expression | None, str]]],
        injected_steps: list[StepDefinition] | None = None,
        injection_rules: dict[str, list[InjectionRule]] | None = None,
        snapshot: dict[str, Any] | None = None,
        inline_steps: int | None = None,
    ):
        self.workflow_type = workflow_type
        #: The most steps one task of this workflow runs (continuation); ``None``: the
        #: fleet's ``RUVON_INLINE_STEPS``.
        self.inline_steps = inline_steps
        self.workflow_version = workflow_version
        self.description = description
        self.state_model = state_model
        self.state_model_path = state_model_path
        self.saga_enabled = saga_enabled
        self.steps = steps
        self.source_file = source_file
        self.functions = functions
        self.input_models = input_models
        self.routes = routes
        self._index = {step.name: i for i, step in enumerate(steps)}
        #: Steps that run only when a ``dynamic_injection`` rule inserts them.
        self.injected_steps = {step.name: step for step in injected_steps or []}
        self.injection_rules = injection_rules or {}
        #: What the definition was built from (the file's content, its ``${VAR}`` and
        #: parameters filled in, and the state model's path): stored once per
        #: ``fingerprint``, so that a run finishes on the definition it started with.
        self.snapshot = snapshot
        self.fingerprint = _fingerprint(snapshot) if snapshot is not None else ""

    def __repr__(self) -> str:
        return f"<WorkflowDefinition {self.workflow_type} v{self.workflow_version}>"

    @property
    def first_step(self) -> str | None:
        return self.steps[0].name if self.steps else None

    def step(self, name: str) -> StepDefinition:
        if name in self._index:
            return self.steps[self._index[name]]
        return self.injected_steps[name]

    def index_of(self, name: str | None) -> int:
        """The position of step ``name`` in the workflow (-1: an injected step, or none)."""
        return self._index.get(name, -1) if name is not None else -1

    def has_step(self, name: str) -> bool:
        return name in self._index or name in self.injected_steps

    @property
    def all_steps(self) -> list[StepDefinition]:
        """The steps in order, then those only a dynamic injection runs."""
        return [*self.steps, *self.injected_steps.values()]

    def step_after(self, name: str) -> str | None:
        if name not in self._index:
            return None  # an injected step: the workflow's runtime knows what follows
        i = self._index[name] + 1
        return self.steps[i].name if i < len(self.steps) else None

    def function(self, path: str | None) -> Any:
        return self.functions.get(path) if path else None

    def loop_body(self, step: StepDefinition) -> list[Any]:
        """A LOOP step's functions, in order: its ``loop_body`` entries, or its ``function``."""
        paths = [entry.get("function") for entry in step.loop_body] or [step.function]
        return [self.functions[path] for path in paths if path]

    @property
    def longest_time_limit(self) -> float | None:
        limits = [s.time_limit_seconds for s in self.all_steps if s.time_limit_seconds]
        return max(limits) if limits else None


def _fingerprint(snapshot: dict[str, Any]) -> str:
    """A short digest of ``snapshot`` (the same content gives the same fingerprint)."""
    import hashlib

    import orjson

    data = orjson.dumps(snapshot, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(data).hexdigest()[:24]
