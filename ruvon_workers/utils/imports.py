"""Resolve dotted paths (``package.module.attr``) once and cache the result."""

from __future__ import annotations

import importlib
from typing import Any

# Shared with ``WorkflowBuilder._import_cache``: one cache per process.
IMPORT_CACHE: dict[str, Any] = {}


def import_from_string(path: str) -> Any:
    """Return the object named by ``path``; cached after the first call."""
    try:
        return IMPORT_CACHE[path]
    except KeyError:
        pass
    if not isinstance(path, str) or "." not in path:
        raise ImportError(f"'{path}' is not a dotted path like 'package.module.function'")
    module_path, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ImportError(f"cannot import module '{module_path}' ({exc})") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ImportError(f"module '{module_path}' has no attribute '{attr}'") from None
    IMPORT_CACHE[path] = obj
    return obj
