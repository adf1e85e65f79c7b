"""The core is sealed: every error derives from ``RuvonError`` and lives in
``ruvon_workers.errors``.

Probes run in a fresh interpreter: other tests of this process import Celery and
psycopg, so ``sys.modules`` here says nothing about what the core imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Exceptions that may live elsewhere: control-flow directives (not errors), a private
#: signal of the HTTP renderer, and MergeConflict (moves with engine/parallel.py).
ELSEWHERE = {
    "ruvon_workers.directives.Directive",
    "ruvon_workers.directives.WorkflowJumpDirective",
    "ruvon_workers.directives.WorkflowPauseDirective",
    "ruvon_workers.directives.StartSubWorkflowDirective",
    "ruvon_workers.engine.http._MissingSecret",
    "ruvon_workers.engine.parallel.MergeConflict",
}

ERROR_CLASSES = """
import importlib, inspect, json, pkgutil
import ruvon_workers
from ruvon_workers.errors import RuvonError
found = {}
for info in pkgutil.walk_packages(ruvon_workers.__path__, "ruvon_workers."):
    if info.name.startswith("ruvon_workers.examples"):  # user code
        continue
    module = importlib.import_module(info.name)
    for name, obj in vars(module).items():
        if (inspect.isclass(obj) and issubclass(obj, BaseException)
                and obj.__module__ == info.name):
            found[f"{info.name}.{name}"] = issubclass(obj, RuvonError)
print(json.dumps(found))
"""


def run_probe(code: str) -> str:
    """Run ``code`` in a fresh interpreter on this tree; return what it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_every_error_lives_in_errors_under_ruvon_error() -> None:
    found = json.loads(run_probe(ERROR_CLASSES))
    elsewhere = sorted(name for name in found
                       if not name.startswith("ruvon_workers.errors.") and name not in ELSEWHERE)
    assert elsewhere == []
    outside = sorted(name for name, is_ruvon in found.items()
                     if name.startswith("ruvon_workers.errors.") and not is_ruvon)
    assert outside == []


def test_moved_errors_keep_their_old_import_locations() -> None:
    from ruvon_workers import errors
    from ruvon_workers.definitions.conditions import ConditionError
    from ruvon_workers.embedded import EmbeddedUnavailable
    from ruvon_workers.engine.http import HttpRequestFailed, TemplateRefused
    from ruvon_workers.persistence.postgres import DatabaseError
    from ruvon_workers.settings import ConfigurationError

    assert (ConditionError, EmbeddedUnavailable, HttpRequestFailed, TemplateRefused,
            DatabaseError, ConfigurationError) == (
        errors.ConditionError, errors.EmbeddedUnavailable, errors.HttpRequestFailed,
        errors.TemplateRefused, errors.DatabaseError, errors.ConfigurationError)
    # `except ValueError` around compile_expression keeps catching it.
    assert issubclass(ConditionError, ValueError)
