"""A step message that comes before the retry its retry policy scheduled (one forged, or
sent again, for the current version) does not run the step early; the retry does, when
it is due."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ruvon_workers.definitions import load_registry
from ruvon_workers.fleet import coordinator as coordinator_module
from ruvon_workers.fleet.coordinator import Coordinator
from ruvon_workers.fleet.settings import FleetSettings
from ruvon_workers.persistence import MemoryPersistenceProvider

from ..helpers import S, workflow_yaml, write_registry
from .test_coordinator_rules import Outbox


async def test_a_step_message_before_its_retry_is_due_is_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = write_registry(tmp_path, {"Test": workflow_yaml(f"""\
        - name: F
          function: {S}.flaky
          retry_policy: {{max_attempts: 3, delay_seconds: 30, jitter: false}}
        """)})
    outbox = Outbox()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    coordinator = Coordinator(load_registry(registry), MemoryPersistenceProvider(),
                              outbox, settings)  # type: ignore[arg-type]
    record, _ = await coordinator.start("Test", {"failures_left": 1})
    report = await coordinator.handle_step(record.id, "F", record.version)
    assert report.applied and report.retry  # attempt 1 failed: again in 30 s
    failed = await coordinator.load(record.id)
    assert failed.status == "ACTIVE" and failed.runtime.attempts == {"F": 1}
    assert failed.runtime.retry_at == pytest.approx(time.time() + 30, abs=2)

    forged = await coordinator.handle_step(record.id, "F", failed.version)
    assert not forged.applied and forged.reason == "not due yet: retry in 30 s"
    kept = await coordinator.load(failed.id)
    assert (kept.version, kept.runtime.attempts) == (failed.version, {"F": 1})

    later = time.time() + 30
    monkeypatch.setattr(coordinator_module, "time", SimpleNamespace(time=lambda: later))
    due = await coordinator.handle_step(record.id, "F", failed.version)
    assert due.applied and due.status == "COMPLETED"
    done = await coordinator.load(record.id)
    assert done.runtime.retry_at is None and done.state["label"] == "ok on attempt 2"
