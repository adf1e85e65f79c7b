"""Continuation (``RUVON_INLINE_STEPS``): one step message runs the steps after its own,
each committed on its own, and publishes the next one only where continuing must stop.
The coordinator runs on the in-memory store; an outbox stands in for the broker, so a
test sees exactly which steps hopped."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from ruvon_workers.definitions import load_registry
from ruvon_workers.errors import DefinitionError
from ruvon_workers.fleet.coordinator import OBSERVERS, Coordinator
from ruvon_workers.fleet.settings import FleetSettings
from ruvon_workers.persistence import MemoryPersistenceProvider

from ..helpers import Outbox, workflow_yaml, write_registry

S = "tests.fixtures.steps"
STEPS = f"""
- name: One
  function: {S}.increment
- name: Two
  function: {S}.increment
- name: Three
  function: {S}.increment
- name: Four
  function: {S}.increment
- name: Five
  function: {S}.increment
"""


def _fleet(tmp_path: Path, steps: str = STEPS, *, inline: int = 5,
           budget_ms: float = 60_000, top: str = "") -> tuple[Coordinator, Outbox]:
    """A coordinator over workflow ``Test`` (``top``: top-level YAML keys of its own)."""
    registry = load_registry(write_registry(tmp_path, {"Test": top + workflow_yaml(steps)}))
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60,
                             inline_steps=inline, inline_budget_ms=budget_ms)
    outbox = Outbox()
    return Coordinator(registry, MemoryPersistenceProvider(), outbox,  # type: ignore[arg-type]
                       settings), outbox


async def _started(coordinator: Coordinator, outbox: Outbox) -> tuple[str, str, int]:
    await coordinator.start("Test", {})
    (workflow_id, step, version, _), = outbox.sent
    outbox.sent.clear()
    return workflow_id, step, version


async def _hops(coordinator: Coordinator, outbox: Outbox, workflow_id: str, step: str,
                version: int) -> list[str]:
    """Handle the first message and each one published after it; the steps that came
    as messages, in order."""
    hops = [step]
    await coordinator.handle_step(workflow_id, step, version)
    while outbox.sent:
        (_, step, version, _), = outbox.sent
        outbox.sent.clear()
        hops.append(step)
        await coordinator.handle_step(workflow_id, step, version)
    return hops


def _applied(coordinator: Coordinator, workflow_id: str) -> Counter[str]:
    store = coordinator.persistence
    assert isinstance(store, MemoryPersistenceProvider)
    return Counter(h.step or "" for h in store._history.get(workflow_id, [])
                   if h.status == "COMPLETED")


async def test_by_default_every_step_is_its_own_message(tmp_path: Path) -> None:
    coordinator, outbox = _fleet(tmp_path, inline=1)
    workflow_id, step, version = await _started(coordinator, outbox)
    assert await _hops(coordinator, outbox, workflow_id, step, version) == [
        "One", "Two", "Three", "Four", "Five"]


async def test_one_message_runs_the_whole_chain_each_step_committed_once(
        tmp_path: Path) -> None:
    coordinator, outbox = _fleet(tmp_path, inline=5)
    seen: list[str] = []
    observe = lambda event, **data: seen.append(data["report"].step) \
        if event == "continued" else None  # noqa: E731
    OBSERVERS.append(observe)
    try:
        workflow_id, step, version = await _started(coordinator, outbox)
        report = await coordinator.handle_step(workflow_id, step, version)
    finally:
        OBSERVERS.remove(observe)
    assert report.applied and report.step == "One"
    assert outbox.sent == []  # nothing hopped
    record = await coordinator.load(workflow_id)
    assert record.status == "COMPLETED" and record.state["count"] == 5
    assert record.version == version + 5  # five commits, one per step
    assert set(_applied(coordinator, workflow_id).values()) == {1}
    assert seen == ["Two", "Three", "Four", "Five"]  # metrics hear of each continued step


async def test_the_step_limit_publishes_the_step_after_it(tmp_path: Path) -> None:
    coordinator, outbox = _fleet(tmp_path, inline=2)
    workflow_id, step, version = await _started(coordinator, outbox)
    assert await _hops(coordinator, outbox, workflow_id, step, version) == [
        "One", "Three", "Five"]
    assert (await coordinator.load(workflow_id)).state["count"] == 5


async def test_a_spent_time_budget_publishes_the_next_step(tmp_path: Path) -> None:
    coordinator, outbox = _fleet(tmp_path, inline=5, budget_ms=0)
    workflow_id, step, version = await _started(coordinator, outbox)
    assert len(await _hops(coordinator, outbox, workflow_id, step, version)) == 5


@pytest.mark.parametrize(("setting", "hopping"), [
    ("inline: false", "Three"),
    ("queue: elsewhere", "Three"),
    ("priority: 7", "Three"),
    ("rate_limit: 10/s", "Three"),
])
async def test_a_step_that_must_hop_is_published(tmp_path: Path, setting: str,
                                                 hopping: str) -> None:
    steps = STEPS.replace("- name: Three\n  function: tests.fixtures.steps.increment",
                          f"- name: Three\n  function: {S}.increment\n  {setting}")
    coordinator, outbox = _fleet(tmp_path, steps)
    workflow_id, step, version = await _started(coordinator, outbox)
    hops = await _hops(coordinator, outbox, workflow_id, step, version)
    assert hopping in hops and hops[0] == "One"
    if setting in ("inline: false", "rate_limit: 10/s"):
        assert hops == ["One", "Three"]  # after it, the chain goes on in its task
    assert (await coordinator.load(workflow_id)).state["count"] == 5


async def test_a_retry_with_a_delay_is_published_with_its_countdown(tmp_path: Path) -> None:
    steps = STEPS.replace("- name: Two\n  function: tests.fixtures.steps.increment",
                          f"- name: Two\n  function: {S}.flaky\n  retry_policy: "
                          "{max_attempts: 3, delay_seconds: 0.5, jitter: false}")
    coordinator, outbox = _fleet(tmp_path, steps)
    await coordinator.start("Test", {"failures_left": 1})
    (workflow_id, step, version, _), = outbox.sent
    outbox.sent.clear()
    await coordinator.handle_step(workflow_id, step, version)
    (_, step, _, _), = outbox.sent  # One ran, Two failed once: its retry hops
    countdown = outbox.countdowns[-1]
    assert step == "Two" and countdown == pytest.approx(0.5)


async def test_a_task_whose_step_has_a_time_limit_runs_only_that_step(
        tmp_path: Path) -> None:
    steps = STEPS.replace("- name: One\n  function: tests.fixtures.steps.increment",
                          f"- name: One\n  function: {S}.increment\n  time_limit_seconds: 30")
    coordinator, outbox = _fleet(tmp_path, steps)
    workflow_id, step, version = await _started(coordinator, outbox)
    assert await _hops(coordinator, outbox, workflow_id, step, version) == ["One", "Two"]


async def test_a_continued_step_gets_its_own_soft_time_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUVON_TEST_SLOW_SECONDS", "5")
    steps = STEPS.replace("- name: Two\n  function: tests.fixtures.steps.increment",
                          "- name: Two\n  function: tests.fixtures.fleet_steps.slow_increment"
                          "\n  time_limit_seconds: 0.3")
    coordinator, outbox = _fleet(tmp_path, steps)
    workflow_id, step, version = await _started(coordinator, outbox)
    await coordinator.handle_step(workflow_id, step, version)
    record = await coordinator.load(workflow_id)
    assert record.status == "FAILED" and record.current_step == "Two"
    assert record.error is not None and record.error["type"] == "SoftTimeLimitExceeded"


def test_settings_default_to_one_step_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUVON_INLINE_STEPS", raising=False)
    assert FleetSettings.from_env().inline_steps == 1
    monkeypatch.setenv("RUVON_INLINE_STEPS", "5")
    monkeypatch.setenv("RUVON_INLINE_BUDGET_MS", "50")
    settings = FleetSettings.from_env()
    assert (settings.inline_steps, settings.inline_budget_ms) == (5, 50.0)
    assert dataclasses.replace(settings, inline_steps=0).inline_steps == 0


@pytest.mark.parametrize(("fleet", "own", "hops"), [
    (1, 5, ["One"]),  # the workflow continues under a fleet that does not
    (5, 1, ["One", "Two", "Three", "Four", "Five"]),  # and opts out under one that does
    (5, 2, ["One", "Three", "Five"]),
])
async def test_a_workflow_sets_its_own_inline_steps(tmp_path: Path, fleet: int, own: int,
                                                    hops: list[str]) -> None:
    coordinator, outbox = _fleet(tmp_path, inline=fleet, top=f"inline_steps: {own}\n")
    workflow_id, step, version = await _started(coordinator, outbox)
    assert await _hops(coordinator, outbox, workflow_id, step, version) == hops
    assert (await coordinator.load(workflow_id)).state["count"] == 5


@pytest.mark.parametrize("value", ["0", "-2", "many", "true", "2.5"])
def test_a_bad_inline_steps_names_the_file_and_field(tmp_path: Path, value: str) -> None:
    registry = write_registry(tmp_path, {"Test": f"inline_steps: {value}\n" + workflow_yaml(STEPS)})
    with pytest.raises(DefinitionError) as caught:
        load_registry(registry)
    message = str(caught.value)
    assert "inline_steps" in message and "1 or more" in message and ".yaml" in message
