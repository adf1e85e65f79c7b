"""The JSON codec used for workflow state everywhere (database, messages, CLI).

``RUVON_USE_ORJSON`` (default true) selects orjson; ``false`` selects the stdlib.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import json
import os
import uuid
from typing import Any

from pydantic import BaseModel


def _env_flag(name: str, default: bool = True) -> bool:
    value = os.getenv(name)
    if value is None:
        return default
    return value.strip().lower() not in {"0", "false", "no", "off", ""}


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


USE_ORJSON = _env_flag("RUVON_USE_ORJSON")

if USE_ORJSON:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency
        USE_ORJSON = False

if USE_ORJSON:

    def dumps_bytes(data: Any) -> bytes:
        return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)

    def serialize(data: Any) -> str:
        """Encode ``data`` as a JSON string."""
        return dumps_bytes(data).decode("utf-8")

    def deserialize(text: str | bytes | bytearray | memoryview) -> Any:
        """Decode a JSON string or bytes."""
        return orjson.loads(text)

else:

    def dumps_bytes(data: Any) -> bytes:
        return serialize(data).encode("utf-8")

    def serialize(data: Any) -> str:
        """Encode ``data`` as a JSON string."""
        return json.dumps(data, default=_default, separators=(",", ":"))

    def deserialize(text: str | bytes | bytearray | memoryview) -> Any:
        """Decode a JSON string or bytes."""
        if isinstance(text, memoryview):
            text = text.tobytes()
        return json.loads(text)


#: Why a string holding NUL is refused (after the place it was found).
NUL_REFUSED = "contains a NUL character (\\u0000), which PostgreSQL cannot store"


def nul_path(data: Any, encoded: bytes | None = None) -> str | None:
    """The dotted path of the first string (value or key) in ``data`` holding a NUL
    character, which PostgreSQL's ``jsonb`` cannot store; ``None`` when there is none.

    One encode (``encoded``, when the caller has it) finds out whether to look (cheap);
    only then is ``data`` walked.
    """
    if b"\\u0000" not in (dumps_bytes(data) if encoded is None else encoded):
        return None
    return _find_nul(data, "")


def _find_nul(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return (path or "<root>") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here
            found = _find_nul(item, here)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None


__all__ = ["NUL_REFUSED", "USE_ORJSON", "deserialize", "dumps_bytes", "nul_path", "serialize"]
