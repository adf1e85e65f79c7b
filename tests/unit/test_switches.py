"""RUVON_USE_ORJSON is honoured on import; RUVON_USE_UVLOOP by the entry points.

Importing ruvon_workers leaves the process's event loop policy alone (an in-process
program chooses its own loop); the package's own loops, and the policy installed by the
``ruvon-workers`` command and workers (``install_uvloop``), are uvloop's when it is on.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import asyncio, json
import ruvon_workers
from ruvon_workers.utils import serialization as s
from ruvon_workers.utils.loop import install_uvloop, new_event_loop

def uvloop_policy():
    return type(asyncio.get_event_loop_policy()).__module__.startswith("uvloop")

on_import = uvloop_policy()
loop = new_event_loop()
own_loop = type(loop).__module__.startswith("uvloop")
loop.close()
installed = install_uvloop()
print(json.dumps({"orjson": s.USE_ORJSON, "policy_on_import": on_import, "own_loop": own_loop,
                  "installed": installed, "policy": uvloop_policy(),
                  "roundtrip": s.deserialize(s.serialize({"a": [1, 2.5, None, "é"]}))}))
"""


@pytest.mark.parametrize(("flag", "expect"), [("true", True), ("false", False)])
def test_switches(flag: str, expect: bool) -> None:
    env = {**os.environ, "RUVON_USE_ORJSON": flag, "RUVON_USE_UVLOOP": flag}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE], env=env,
                         capture_output=True, text=True, check=True).stdout
    import json

    got = json.loads(out)
    assert got == {"orjson": expect, "policy_on_import": False, "own_loop": expect,
                   "installed": expect, "policy": expect,
                   "roundtrip": {"a": [1, 2.5, None, "é"]}}


def test_the_cli_installs_uvloop_before_running_a_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvon_workers.cli import main as entry

    calls: list[str] = []
    monkeypatch.setattr(entry, "install_uvloop", lambda: calls.append("installed"))
    monkeypatch.setattr(entry, "cli", lambda **_: calls.append("ran"))
    entry.main()
    assert calls == ["installed", "ran"]


WORKER_PROBE = """
import asyncio, json
from celery import signals
from ruvon_workers.fleet import app as fleet_app  # what `celery -A` imports
from ruvon_workers.fleet.worker import run_worker

def uvloop_policy():
    return type(asyncio.get_event_loop_policy()).__module__.startswith("uvloop")

seen = {"after_import": uvloop_policy()}
signals.worker_init.send(sender=None)  # a worker started by `celery -A ...`
seen["worker_init"] = uvloop_policy()
asyncio.set_event_loop_policy(None)

class App:  # stands in for the Celery app: records the policy the worker starts with
    def worker_main(self, argv):
        seen["run_worker"] = uvloop_policy()

run_worker(App(), ["worker"])
print(json.dumps(seen))
"""


@pytest.mark.parametrize("flag", ["true", "false"])
def test_workers_install_uvloop_as_they_start(flag: str) -> None:
    env = {**os.environ, "RUVON_USE_UVLOOP": flag}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", WORKER_PROBE], env=env,
                         capture_output=True, text=True, check=True).stdout
    import json

    on = flag == "true"
    assert json.loads(out) == {"after_import": False, "worker_init": on, "run_worker": on}


def test_serialize_handles_models_and_dates() -> None:
    import datetime as dt

    from ruvon_workers.utils.serialization import deserialize, serialize

    from ..fixtures.models import CounterState

    text = serialize({"s": CounterState(count=2), "t": dt.date(2026, 1, 2)})
    assert deserialize(text)["s"]["count"] == 2 and deserialize(text)["t"] == "2026-01-02"
