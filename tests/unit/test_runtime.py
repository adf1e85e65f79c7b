"""The typed runtime reads what earlier versions stored and writes it back the same way."""

from __future__ import annotations

from typing import Any

from ruvon_workers.engine.records import WorkflowRecord
from ruvon_workers.engine.runtime import Runtime

#: A runtime column as the previous version (a plain dict) wrote it, every key in use.
STORED: dict[str, Any] = {
    "attempts": {"Charge": 2},
    "completed": ["Validate", "Reserve"],
    "compensated": ["Reserve"],
    "waiting_for": "Approve",
    "waiting_reason": "automate_next",
    "pending_input": {"approved": True},
    "execution": {"step": "Charge", "version": 4},
    "lost": {"Charge": 1},
    "compensate": {"step": "Charge", "error": {"type": "TimeoutError", "message": "hard"}},
    "child": {"id": "c-1", "workflow_type": "Shipment", "status": "ACTIVE",
              "current_step": "Pack"},
    "parent": {"id": "p-1", "workflow_type": "Order", "step": "Ship"},
    "spawned_by": {"id": "p-2", "workflow_type": "Order", "step": "Notify"},
    "spawned": {"Notify": "s-1"},
    "loop": {"step": "Each", "index": 3},
    "parallel": {"step": "Checks", "total": 2, "deadline": 1700000000.5},
    "inserted": {"steps": ["Review"], "then": "Ship"},
}


def test_a_stored_runtime_reads_into_named_fields_and_writes_back_unchanged() -> None:
    runtime = Runtime.from_dict(STORED)
    assert runtime.attempts == {"Charge": 2} and runtime.completed == ["Validate", "Reserve"]
    assert runtime.child is not None and runtime.child["current_step"] == "Pack"
    assert runtime.parallel is not None and runtime.parallel["deadline"] == 1700000000.5
    assert runtime.extra == {}
    assert runtime.to_dict() == STORED


def test_keys_this_version_does_not_know_are_kept() -> None:
    runtime = Runtime.from_dict({"completed": ["A"], "written_by_a_newer_version": {"x": 1}})
    assert runtime.extra == {"written_by_a_newer_version": {"x": 1}}
    assert runtime.to_dict() == {"completed": ["A"], "written_by_a_newer_version": {"x": 1}}


def test_empty_fields_are_left_out_of_the_row() -> None:
    assert Runtime().to_dict() == {}
    assert Runtime.from_dict(None).to_dict() == {}
    assert Runtime(completed=["A"], attempts={}).to_dict() == {"completed": ["A"]}


def test_after_a_step_its_bookkeeping_is_cleared_without_touching_the_original() -> None:
    runtime = Runtime.from_dict(STORED)
    after = runtime.after_step("Charge", completed=True)
    assert after.completed == ["Validate", "Reserve", "Charge"]
    assert "Charge" not in after.attempts and after.lost == {}
    assert (after.pending_input, after.execution, after.compensate, after.child,
            after.loop, after.parallel) == (None, None, None, None, None, None)
    assert runtime.to_dict() == STORED  # the record's own runtime is unchanged


def test_a_record_built_from_a_stored_dict_gets_a_typed_runtime() -> None:
    record = WorkflowRecord("id", "T", "1", "ACTIVE", "A", {}, runtime=dict(STORED))  # type: ignore[arg-type]
    assert isinstance(record.runtime, Runtime)
    assert record.runtime.to_dict() == STORED


def test_a_copy_equals_its_original_and_shares_no_container() -> None:
    runtime = Runtime.from_dict({**STORED, "unknown": {"kept": True}})
    copied = runtime.copy()
    assert copied == runtime
    copied.attempts["Other"] = 1
    copied.completed.append("Other")
    copied.extra["more"] = 1
    assert runtime.to_dict() == {**STORED, "unknown": {"kept": True}}
