"""Run one compat program's ``driver.main()`` and write its result as JSON.

Usage: ``python run_program.py <program dir> <output file>``

Stdlib only: the same file runs under the reference SDK's interpreter (when recording
expectations) and under this project's (in the tests). The program directory becomes the
working directory and the first entry of ``sys.path`` (instead of this file's directory),
so the driver imports its own ``models`` and ``steps`` exactly as when it is run by hand.
Whatever the engine prints goes to stderr; the JSON goes only to the output file.

``RUVON_COMPAT_PROVIDERS`` runs the same ``main()`` with providers passed in, as every
driver allows (``main(persistence_provider=None, execution_provider=None)``), built from
Ruvon's classes: ``sqlite:<file>`` gives it a SQLite file (steps in-process), ``fleet``
PostgreSQL (``DATABASE_URL``) and the ``CeleryExecutionProvider`` (``CELERY_BROKER_URL``,
``RUVON_REGISTRY``), so that every step is a task on real workers. Unset: the driver's own
defaults (in memory, in-process), which is how the expectations were recorded.

With ``RUVON_COMPAT_PROJECT_ROOT`` set (the tests set it to the checkout under test), every
other directory on ``sys.path`` that holds a ``ruvon_workers`` package is dropped first: an
editable install of another checkout puts that checkout's directory on ``sys.path`` through
a ``.pth`` file, and its packages would otherwise be imported instead of missing ones here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sys
from typing import Any


def _jsonable(value: object) -> object:
    """Pydantic models (and anything with ``model_dump``) as JSON data; the rest as text."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return str(value)


def keep_only_checkout(root: str) -> None:
    """Drop the directories of other checkouts of this project from ``sys.path``."""
    root = os.path.abspath(root)
    sys.path[:] = [
        entry for entry in sys.path
        if os.path.abspath(entry or ".") == root
        or not os.path.isfile(os.path.join(entry or ".", "ruvon_workers", "__init__.py"))
    ]


async def _main(driver: Any, providers: str) -> object:
    """``driver.main()``, given the providers ``providers`` names (see above)."""
    main = driver.main
    if not providers:
        return await main()
    persistence: Any
    execution: Any = None
    if providers.startswith("sqlite:"):
        from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider

        persistence = SQLitePersistenceProvider(db_path=providers.removeprefix("sqlite:"))
    elif providers == "fleet":
        from ruvon.implementations.execution.celery import CeleryExecutionProvider
        from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

        persistence = PostgresPersistenceProvider(os.environ["DATABASE_URL"])
        execution = CeleryExecutionProvider(timeout=60)
    else:
        raise SystemExit(f"RUVON_COMPAT_PROVIDERS={providers!r}: use sqlite:<file> or fleet")
    await persistence.initialize()
    try:
        return await main(persistence_provider=persistence, execution_provider=execution)
    finally:
        await persistence.close()


def run(program_dir: str, out_path: str) -> None:
    program_dir = os.path.abspath(program_dir)
    out_path = os.path.abspath(out_path)
    os.chdir(program_dir)
    sys.path[0] = program_dir
    with contextlib.redirect_stdout(sys.stderr):
        driver = importlib.import_module("driver")
        result = asyncio.run(_main(driver, os.environ.get("RUVON_COMPAT_PROVIDERS", "")))
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, default=_jsonable)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: run_program.py <program dir> <output file>")
    if os.environ.get("RUVON_COMPAT_PROJECT_ROOT"):
        keep_only_checkout(os.environ["RUVON_COMPAT_PROJECT_ROOT"])
    run(sys.argv[1], sys.argv[2])
