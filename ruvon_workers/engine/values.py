"""The state and input of a step: validate, call, merge, check it can be stored."""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from ..definitions.models import StepDefinition, WorkflowDefinition
from ..errors import InputTooLarge, InvalidStateError, StepFailed
from ..settings import max_input_bytes
from ..utils.serialization import NUL_REFUSED, dumps_bytes, nul_path
from .context import StepContext
from .records import WorkflowRecord

#: A step's function (also a compensation, a LOOP body, a PARALLEL branch or task), called
#: as ``fn(state, context, **input)``. Its parameters are typed by the workflow's own
#: models, so only the shape of the call is known here; it returns a dict of state fields,
#: a model or None (or an awaitable of one), checked by :func:`merge_result`.
StepFunction = Callable[..., object]


def check_storable(data: object, step_name: str, what: str = "state field") -> None:
    """Refuse data PostgreSQL cannot store (a NUL character in a string), naming where."""
    path = nul_path(data)
    if path is not None:
        raise StepFailed(step_name, f"{what} '{path}' {NUL_REFUSED}; remove it in the step "
                                    "(e.g. value.replace('\\x00', ''))")


@functools.lru_cache(maxsize=1024)
def _keywords(fn: StepFunction) -> frozenset[str] | None:
    """The keywords ``fn`` takes after ``(state, context)``; ``None``: any (``**kwargs``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in params[2:] if p.kind in named)


def accepted(fn: StepFunction, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The part of ``kwargs`` that ``fn`` declares (all of it for ``**kwargs``): input
    reaches a function that asks for it, and a ``(state, context)`` one is not broken by
    it. The whole input stays on ``context.user_input``."""
    if not kwargs:
        return kwargs
    names = _keywords(fn)
    return kwargs if names is None else {k: v for k, v in kwargs.items() if k in names}


@functools.lru_cache(maxsize=1024)
def positional_count(fn: StepFunction) -> int:
    """How many arguments ``fn`` takes by position (a large number for ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 1 << 16
    return sum(1 for p in params
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def state_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of stored state for a function that gets it as a dict (Ruvon's ASYNC and
    PARALLEL functions): what it changes in place is not the stored state."""
    return copy.deepcopy(data)


#: Blocking (non-``async``) functions run in a thread of their own instead of on the
#: event loop: set where one loop serves many tasks at once (a ``threads`` pool worker),
#: so that one blocking step delays no other.
_off_loop = False


def run_blocking_functions_in_threads(on: bool = True) -> None:
    global _off_loop
    _off_loop = on


def blocking_functions_in_threads() -> bool:
    return _off_loop


async def call_step_function(fn: StepFunction, state: object, context: StepContext,
                             kwargs: dict[str, Any]) -> object:
    """``fn(state, context, **kwargs)`` with the keywords it takes, awaited if it is a
    coroutine (in a thread of its own if it blocks and the loop is shared)."""
    kwargs = accepted(fn, kwargs)
    if _off_loop and not inspect.iscoroutinefunction(fn):
        result = await asyncio.to_thread(fn, state, context, **kwargs)
    else:
        result = fn(state, context, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def check_input_size(data: object, what: str) -> bytes | None:
    """Refuse ``data`` (initial data, input) whose JSON encoding is bigger than
    ``RUVON_MAX_INPUT_BYTES`` (:class:`InputTooLarge`, naming ``what``). Return the
    encoding; ``None`` when the codec cannot encode ``data`` (the model that validates it
    decides)."""
    try:
        encoded = dumps_bytes(data)
    except (TypeError, ValueError):
        return None
    limit = max_input_bytes()
    if len(encoded) > limit:
        raise InputTooLarge(what, len(encoded), limit)
    return encoded


def validate_input(defn: WorkflowDefinition, step: StepDefinition,
                   user_input: dict[str, Any]) -> BaseModel | None:
    """Check input for ``step``: its size (:func:`check_input_size`), then each field
    (:class:`InvalidStateError` naming them)."""
    encoded = check_input_size(user_input, f"Input for step '{step.name}'")
    missing = [key for key in step.required_input if key not in user_input]
    if missing:
        raise InvalidStateError(
            f"Input for step '{step.name}'",
            [{"loc": (key,), "msg": "Field required"} for key in missing],
        )
    unstorable = nul_path(user_input, encoded)
    if unstorable is not None:
        raise InvalidStateError(
            f"Input for step '{step.name}'",
            [{"loc": (unstorable,), "msg": NUL_REFUSED}])
    model = defn.input_models.get(step.name)
    if model is None:
        return None
    try:
        return model.model_validate(user_input)
    except ValidationError as exc:
        raise InvalidStateError.from_validation_error(
            f"Input for step '{step.name}'", exc) from None


def merge_result(defn: WorkflowDefinition, state: BaseModel, result: object,
                 step_name: str) -> dict[str, Any]:
    """Merge a step's returned dict (and in-place changes) into the state; re-validate."""
    # The live field values (not a dump): in-place changes are kept, and nested models
    # are not validated again unless the step replaced them.
    data = {**state.__dict__, **(state.__pydantic_extra__ or {})}
    if isinstance(result, BaseModel):
        result = result.model_dump()
    if isinstance(result, dict):
        data.update(result)
    elif result is not None:
        raise StepFailed(step_name, f"returned {type(result).__name__}; a step returns a dict "
                                    "of state fields to merge, or None")
    return validated_state(defn, data, step_name)


def validated_state(defn: WorkflowDefinition, data: dict[str, Any], step_name: str
                    ) -> dict[str, Any]:
    """``data`` validated by the state model, as stored (JSON types, storable)."""
    try:
        validated = defn.state_model.model_validate(data)
    except ValidationError as exc:
        err = InvalidStateError.from_validation_error(
            f"Step '{step_name}' produced a state that {defn.state_model.__name__} rejects", exc)
        raise StepFailed(step_name, str(err)) from None
    dumped: dict[str, Any] = validated.model_dump(mode="json")
    check_storable(dumped, step_name)
    return dumped


def load_state(defn: WorkflowDefinition, record: WorkflowRecord) -> BaseModel:
    return defn.state_model.model_validate(record.state)
