"""What a step changed in the state, as its history row records it.

``detail["changed"]``: ``{key: new value}`` for each top-level key the step added or gave
another value; ``detail["removed"]``: the top-level keys it dropped. A value whose JSON
encoding is over :data:`VALUE_LIMIT` bytes is recorded as ``{"truncated": true,
"bytes": N}``, so history rows stay small.

This runs on every step: the states are compared as dicts and only the changed values
are encoded. The state before a step is the stored one, except where the state model
holds a stored value by reference (an ``Any`` field, a ``dict[str, Any]``, extra keys):
a step may change such a value in place, so :func:`detached` copies those values first.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import functools
import types
import typing
import uuid
from typing import Any

from pydantic import BaseModel

from ..utils.serialization import deserialize, dumps_bytes

#: The largest JSON encoding (bytes) of a value recorded as it is.
VALUE_LIMIT = 2048

_IMMUTABLE = (str, int, float, bool, bytes, type(None), decimal.Decimal, dt.datetime, dt.date,
              dt.time, dt.timedelta, uuid.UUID)
_CONTAINERS = frozenset({list, set, frozenset, tuple, dict})


def state_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The ``changed`` and ``removed`` detail of a step that turned ``before`` into
    ``after``; empty when nothing changed."""
    changed = {}
    for key, value in after.items():
        old = before.get(key, _MISSING)
        # type(): 1 == True == 1.0 in Python, but not in the stored JSON.
        if old is _MISSING or (old is not value and
                               (type(old) is not type(value) or old != value)):
            changed[key] = bounded(value)
    detail: dict[str, Any] = {"changed": changed} if changed else {}
    removed = [key for key in before if key not in after]
    if removed:
        detail["removed"] = removed
    return detail


def bounded(value: Any) -> Any:
    """``value``, or ``{"truncated": true, "bytes": N}`` when its JSON is too long."""
    if value is None or isinstance(value, bool | int | float):
        return value
    size = len(dumps_bytes(value))
    return {"truncated": True, "bytes": size} if size > VALUE_LIMIT else value


def detached(model: type[BaseModel], state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as it stands, safe from a step changing it in place: the values the
    state model would hold by reference are copies (none for a fully typed model)."""
    fields, extra = _shared(model)
    if not (fields or extra):
        return state
    keys = [k for k, v in state.items()
            if isinstance(v, dict | list) and (k in fields or (extra and k not in _typed(model)))]
    if not keys:
        return state
    copy = dict(state)
    for key in keys:
        copy[key] = deserialize(dumps_bytes(state[key]))
    return copy


class _Missing:
    pass


_MISSING = _Missing()


@functools.cache
def _typed(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


@functools.cache
def _shared(model: type[BaseModel]) -> tuple[frozenset[str], bool]:
    """The fields of ``model`` whose stored value validation may keep by reference, and
    whether extra keys are kept (as they are)."""
    shared = frozenset(name for name, info in model.model_fields.items()
                       if not _rebuilt(info.annotation, set()))
    return shared, model.model_config.get("extra") == "allow"


def _rebuilt(annotation: Any, seen: set[type]) -> bool:
    """Whether validating into ``annotation`` builds new containers all the way down
    (so the model shares nothing mutable with the stored state)."""
    if annotation in _IMMUTABLE or (isinstance(annotation, type)
                                    and issubclass(annotation, enum.Enum)):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return True
        seen.add(annotation)
        if annotation.model_config.get("extra") == "allow":
            return False
        return all(_rebuilt(info.annotation, seen)
                   for info in annotation.model_fields.values())
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return _rebuilt(args[0], seen)
    if origin is typing.Union or origin is types.UnionType:
        return all(_rebuilt(arg, seen) for arg in args)
    if origin in _CONTAINERS and args:
        return all(arg is Ellipsis or _rebuilt(arg, seen) for arg in args)
    return False  # Any, object, a bare list or dict, anything not known to be rebuilt
