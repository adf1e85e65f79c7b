"""The core is sealed: in-process use on the memory store (definitions, engine,
``SyncExecutionProvider``) imports none of Celery, kombu, psycopg, psycopg_pool, redis or
httpx; every error derives from ``RuvonError`` and lives in ``ruvon_workers.errors``.

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

#: Exceptions that may live elsewhere: control-flow directives (not errors) and a private
#: signal of the HTTP renderer.
ELSEWHERE = {
    "ruvon_workers.directives.Directive",
    "ruvon_workers.directives.WorkflowJumpDirective",
    "ruvon_workers.directives.WorkflowPauseDirective",
    "ruvon_workers.directives.StartSubWorkflowDirective",
    "ruvon_workers.engine.http._MissingSecret",
}

#: Modules the pure core must not import.
DRIVERS = ("celery", "kombu", "psycopg", "psycopg_pool", "redis", "httpx")

SEALED_RUN = """
import asyncio, json, sys
DRIVERS = __DRIVERS__
from ruvon_workers import WorkflowBuilder
from ruvon_workers.definitions.models import StepType
from ruvon_workers.engine.http import effective_retry_policy
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import MemoryPersistenceProvider
# Ruvon's front door for in-process use is sealed too.
import ruvon, ruvon.builder, ruvon.workflow, ruvon.models, ruvon.providers.observer
import ruvon.implementations.persistence.memory, ruvon.implementations.execution.sync
import ruvon.implementations.observability.logging, ruvon.implementations.observability.noop
import ruvon.implementations.expression_evaluator.simple
import ruvon.implementations.templating.jinja2

async def main():
    builder = WorkflowBuilder.from_registry("tests/fixtures/sealed/workflow_registry.yaml")
    steps = [s for d in builder.registry for s in d.all_steps]
    policies = [effective_retry_policy(s) for s in steps if s.type is StepType.HTTP]
    store = MemoryPersistenceProvider()
    wf = await builder.create_workflow("EveryType", {}, persistence_provider=store,
                                       execution_provider=SyncExecutionProvider())
    while wf.status == "ACTIVE":
        await wf.next_step()
    waited = (str(wf.status), wf.current_step_name)
    await wf.next_step(user_input={"note": "sealed"})
    while wf.status == "ACTIVE":
        await wf.next_step()
    spawned = await store.load_workflow(wf.state.spawned_id)
    print(json.dumps({
        "types": sorted({str(s.type) for s in steps}),
        "http_policies": [p.max_attempts if p else None for p in policies],
        "waited": waited, "status": str(wf.status), "state": wf.state.model_dump(),
        "spawned": str(spawned.status),
        "schedules": [s.name for s in await store.list_schedules()],
        "drivers": sorted(m for m in sys.modules if m.split(".")[0] in DRIVERS),
    }))

asyncio.run(main())
""".replace("__DRIVERS__", repr(DRIVERS))

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


def test_in_process_use_on_the_memory_store_imports_no_driver() -> None:
    """A registry of every step type loads (HTTP retry policies computed) and a workflow
    with a step of every type runs in-process to its wait and on to its end, in an
    interpreter that never imports Celery, kombu, psycopg, redis or httpx."""
    from ruvon_workers.definitions.models import StepType

    got = json.loads(run_probe(SEALED_RUN))
    assert got["types"] == sorted(str(t) for t in StepType)
    assert got["http_policies"] == [3, 2]  # Quote_Shipping's and Call_Api's
    assert got["waited"] == ["WAITING_HUMAN", "Approve"]
    assert got["status"] == "COMPLETED" and got["state"]["finished"] is True
    assert got["state"]["total"] == 6 and got["state"]["scores"] == {"1": 1, "2": 4, "3": 9}
    assert got["state"]["path"] == ["Begin", "Warm_Up", "Finish"]
    assert got["spawned"] == "COMPLETED" and got["schedules"] == ["sealed-nightly"]
    assert got["drivers"] == []


def test_in_process_use_on_the_sqlite_store_imports_no_driver() -> None:
    """The same run on SQLite (``:memory:``): sqlite3 is the standard library's, and none
    of the drivers is imported either."""
    memory = ("import MemoryPersistenceProvider", "store = MemoryPersistenceProvider()")
    assert all(part in SEALED_RUN for part in memory)
    probe = SEALED_RUN.replace(memory[0], "import SQLitePersistenceProvider").replace(
        memory[1], "store = SQLitePersistenceProvider()\n    await store.initialize()")
    got = json.loads(run_probe(probe))
    assert got["status"] == "COMPLETED" and got["state"]["finished"] is True
    assert got["spawned"] == "COMPLETED" and got["schedules"] == ["sealed-nightly"]
    assert got["drivers"] == []


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
