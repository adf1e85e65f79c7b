"""Configuration read from the environment, in one place."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ConfigurationError

DEFAULT_QUEUE = "ruvon"
#: ``initial_data`` and ``user_input`` whose JSON encoding is bigger are refused.
DEFAULT_MAX_INPUT_BYTES = 1024 * 1024
#: A WHILE loop without ``max_iterations`` ends after this many rounds (Ruvon SDK
#: 0.1.3's ``LoopStep.max_iterations`` default).
DEFAULT_MAX_LOOP_ITERATIONS = 1000
#: A PARALLEL step without ``max_branches`` fans out to at most this many branches.
DEFAULT_MAX_BRANCHES = 1000


def database_url(given: str | None = None, *, required: bool = True) -> str | None:
    url = given or os.getenv("DATABASE_URL") or os.getenv("RUVON_DB_URL")
    if not url and required:
        raise ConfigurationError(
            "No database configured: set DATABASE_URL (or RUVON_DB_URL), e.g. "
            "postgresql://user@127.0.0.1:5432/ruvon, or pass --database-url."
        )
    return url


def broker_url(given: str | None = None, *, required: bool = True) -> str | None:
    url = given or os.getenv("CELERY_BROKER_URL")
    if not url and required:
        raise ConfigurationError(
            "No broker configured: set CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/0, "
            "or pass --broker-url."
        )
    return url


def registry_path(given: str | os.PathLike[str] | None = None) -> Path:
    """The registry to load: the argument, ``RUVON_REGISTRY``, ``./config/``, or the
    example registry packaged with the project."""
    candidate = given or os.getenv("RUVON_REGISTRY")
    if candidate:
        path = Path(candidate)
        if not path.exists():
            raise ConfigurationError(f"Registry file {path} does not exist (RUVON_REGISTRY).")
        return path
    local = Path("config/workflow_registry.yaml")
    if local.exists():
        return local
    packaged = Path(str(resources.files("ruvon_workers").joinpath("config/workflow_registry.yaml")))
    if packaged.exists():
        return packaged
    raise ConfigurationError("No workflow registry: set RUVON_REGISTRY to your "
                             "workflow_registry.yaml or pass --registry.")


def default_queue() -> str:
    return os.getenv("RUVON_DEFAULT_QUEUE", DEFAULT_QUEUE)


def float_env(name: str, default: float) -> float:
    raw = os.getenv(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


def positive_int_env(name: str, default: int) -> int:
    raw = os.getenv(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ConfigurationError(f"{name}={raw!r} must be 1 or more")
    return value


def max_input_bytes() -> int:
    """The largest ``initial_data`` or ``user_input`` taken, in bytes of its JSON encoding
    (``RUVON_MAX_INPUT_BYTES``, default 1 MiB)."""
    return positive_int_env("RUVON_MAX_INPUT_BYTES", DEFAULT_MAX_INPUT_BYTES)


def max_loop_iterations() -> int:
    """The ``max_iterations`` of a WHILE loop that sets none (``RUVON_MAX_LOOP_ITERATIONS``)."""
    return positive_int_env("RUVON_MAX_LOOP_ITERATIONS", DEFAULT_MAX_LOOP_ITERATIONS)


def max_branches() -> int:
    """The ``max_branches`` of a PARALLEL step that sets none (``RUVON_MAX_BRANCHES``)."""
    return positive_int_env("RUVON_MAX_BRANCHES", DEFAULT_MAX_BRANCHES)
