"""Make a program's result comparable across runs and engines.

Stdlib only (used by ``scripts/record-compat.py`` and by the tests).

- Every UUID (as a value, inside a string, or as a dict key) becomes ``<uuid-N>``, numbered
  by first appearance. Numbering restarts for each top-level key of the result, so the ids
  in ``state`` do not depend on what else (``calls``, ``notes``) the engine reported.
- Numbers under keys ending in ``_at`` (``spawned_at``: seconds since the epoch) and
  ISO-8601 date-time strings anywhere become ``<timestamp>``.
"""

from __future__ import annotations

import re
from typing import Any

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
TIMESTAMP = "<timestamp>"


class _Ids:
    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def sub(self, text: str) -> str:
        def repl(match: re.Match[str]) -> str:
            key = match.group(0).lower()
            if key not in self.seen:
                self.seen[key] = f"<uuid-{len(self.seen) + 1}>"
            return self.seen[key]

        return UUID_RE.sub(repl, text)


def _walk(value: Any, ids: _Ids) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            new_key = ids.sub(str(key))
            epoch = isinstance(item, int | float) and not isinstance(item, bool)
            if new_key.endswith("_at") and epoch:
                out[new_key] = TIMESTAMP
            else:
                out[new_key] = _walk(item, ids)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, ids) for item in value]
    if isinstance(value, str):
        if DATETIME_RE.match(value):
            return TIMESTAMP
        return ids.sub(value)
    return value


def normalize(result: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``result`` without ids or timestamps (see the module docstring)."""
    return {key: _walk(value, _Ids()) for key, value in result.items()}
