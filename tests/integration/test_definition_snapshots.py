"""A run finishes on the definition it started with (Ruvon's ``definition_snapshot``):
when its workflow file changes under it (a step removed, renamed or reordered), a builder
loaded from the new file still takes the run through its original steps, while new runs
take the new ones. Each store keeps the snapshot once per version of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruvon_workers import WorkflowBuilder
from ruvon_workers.execution import SyncExecutionProvider

S = "tests.fixtures.steps"

ORIGINAL = f"""\
workflow_type: Counter
workflow_version: "1"
steps:
  - {{name: A, function: {S}.increment}}
  - {{name: B, function: {S}.increment}}
  - {{name: C, function: {S}.increment}}
"""

CHANGES = {
    "removed": f"""\
workflow_type: Counter
workflow_version: "2"
steps:
  - {{name: A, function: {S}.increment}}
  - {{name: C, function: {S}.increment}}
""",
    "renamed": f"""\
workflow_type: Counter
workflow_version: "2"
steps:
  - {{name: A, function: {S}.increment}}
  - {{name: B_Renamed, function: {S}.increment}}
  - {{name: C, function: {S}.increment}}
""",
    "reordered": f"""\
workflow_type: Counter
workflow_version: "2"
steps:
  - {{name: C, function: {S}.increment}}
  - {{name: B, function: {S}.increment}}
  - {{name: A, function: {S}.increment}}
""",
}


def write_registry(root: Path, workflow: str) -> Path:
    (root / "counter.yaml").write_text(workflow)
    registry = root / "workflow_registry.yaml"
    registry.write_text("workflows:\n  - type: Counter\n    config_file: counter.yaml\n"
                        "    initial_state_model: tests.fixtures.models.CounterState\n")
    return registry


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_run_finishes_on_the_definition_it_started_with(
        tmp_path: Path, persistence, change: str) -> None:
    registry = write_registry(tmp_path, ORIGINAL)
    execution = SyncExecutionProvider()
    old = await WorkflowBuilder.from_registry(registry).create_workflow(
        "Counter", {}, persistence_provider=persistence, execution_provider=execution)
    await old.next_step()
    assert old.current_step_name == "B"

    write_registry(tmp_path, CHANGES[change])  # the file changes under the run
    builder = WorkflowBuilder.from_registry(registry)
    run = await builder.load_workflow(old.id, persistence_provider=persistence,
                                      execution_provider=execution)
    while run.status == "ACTIVE":
        await run.next_step()
    assert run.status == "COMPLETED"
    assert run.state.path == ["A", "B", "C"]  # type: ignore[attr-defined]
    assert run.record.workflow_version == "1"

    new = await builder.create_workflow("Counter", {}, persistence_provider=persistence,
                                        execution_provider=execution)
    while new.status == "ACTIVE":
        await new.next_step()
    assert new.state.path == [  # type: ignore[attr-defined]
        s.name for s in builder.definition("Counter").steps]


async def test_the_snapshot_is_what_ruvon_programs_read(tmp_path: Path, persistence) -> None:
    from ruvon.builder import WorkflowBuilder as RuvonBuilder

    registry = write_registry(tmp_path, ORIGINAL)
    builder = RuvonBuilder(workflow_registry=str(registry))
    wf = await builder.create_workflow("Counter", persistence_provider=persistence,
                                       execution_provider=SyncExecutionProvider(),
                                       initial_data={})
    snapshot = wf.definition_snapshot
    assert [s["name"] for s in snapshot["steps"]] == ["A", "B", "C"]
    assert wf.to_dict()["definition_snapshot"] == snapshot
    assert await persistence.load_definition(wf.record.runtime.definition) is not None
