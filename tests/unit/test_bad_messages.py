"""Bad messages: a wire or step message with a kwarg of the wrong type, or sent to the
task of another step or workflow type, is recorded as a dead letter with its reason,
and the worker keeps serving; a database outage still propagates (Celery retries)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ruvon_workers.errors import DatabaseError

from .test_bounded_input import wire

__all__ = ["wire"]


def _letters(wire: SimpleNamespace) -> list[tuple[str, str | None, str]]:
    """The dead letters, oldest first."""
    letters = wire.run(wire.store.dead_letters())
    return [(d.task, d.workflow_id, d.reason) for d in reversed(letters)]


def _start(wire: SimpleNamespace, workflow_type: str = "Crashy", **data: Any) -> Any:
    answer = wire.app.tasks["ruvon.start_workflow"](workflow_type=workflow_type,
                                                    initial_data=data)
    assert answer["created"] is True
    wire.outbox.sent.clear()
    return wire.run(wire.store.load_workflow(answer["workflow_id"]))


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"workflow_type": ["Ticked"]}, "workflow_type must be a non-empty string, got ['Ticked']"),
    ({"workflow_type": "Ticked", "initial_data": [1]}, "initial_data must be an object, got [1]"),
    ({"workflow_type": "Ticked", "workflow_id": {"a": 1}},
     "workflow_id must be a non-empty string, got {'a': 1}"),
    ({"workflow_type": "Ticked", "idempotency_key": 7},
     "idempotency_key must be a non-empty string, got 7"),
])
def test_a_start_with_a_kwarg_of_the_wrong_type_is_a_dead_letter(
        wire: SimpleNamespace, kwargs: dict[str, Any], reason: str) -> None:
    assert wire.app.tasks["ruvon.start_workflow"](**kwargs) == {"error": reason}
    assert [(t, r) for t, _, r in _letters(wire)] == [("ruvon.start_workflow", reason)]
    assert wire.run(wire.store.list_workflows()) == []
    _start(wire, "Ticked")  # and the worker keeps serving


def test_resume_and_cancel_with_kwargs_of_the_wrong_type_are_dead_letters(
        wire: SimpleNamespace) -> None:
    resume, cancel = wire.app.tasks["ruvon.resume_workflow"], wire.app.tasks[
        "ruvon.cancel_workflow"]
    record = _start(wire)
    assert resume(workflow_id={"id": 1}, user_input={}) == {
        "error": "workflow_id must be a non-empty string, got {'id': 1}"}
    assert resume(workflow_id=record.id, user_input=[1]) == {
        "error": "user_input must be an object, got [1]"}
    assert cancel(workflow_id=5) == {"error": "workflow_id must be a non-empty string, got 5"}
    assert cancel(workflow_id=record.id, reason=["no"]) == {
        "error": "reason must be a non-empty string, got ['no']"}
    assert [(t, w) for t, w, _ in _letters(wire)] == [
        ("ruvon.resume_workflow", None), ("ruvon.resume_workflow", record.id),
        ("ruvon.cancel_workflow", None), ("ruvon.cancel_workflow", record.id)]
    assert wire.run(wire.store.load_workflow(record.id)).status == "ACTIVE"


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"step": "First", "version": "abc"}, "version must be an integer, got 'abc'"),
    ({"step": "First", "version": 1, "branch": "0"}, "branch must be an integer, got '0'"),
    ({"step": ["First"], "version": 1}, "step must be a non-empty string, got ['First']"),
    ({"version": 1}, "step must be a non-empty string, got None"),
    ({"step": "First", "version": True}, "version must be an integer, got True"),
])
def test_a_step_message_with_a_kwarg_of_the_wrong_type_is_a_dead_letter(
        wire: SimpleNamespace, kwargs: dict[str, Any], reason: str) -> None:
    record = _start(wire)
    for task in ("ruvon.step.Crashy.First", "ruvon.step"):
        answer = wire.app.tasks[task](workflow_id=record.id, **kwargs)
        assert answer == {"applied": False, "reason": reason}
    answer = wire.app.tasks["ruvon.step"](workflow_id={"id": record.id}, step="First",
                                          version=1)
    assert answer["reason"] == ("workflow_id must be a non-empty string, got "
                                f"{{'id': {record.id!r}}}")
    assert [(t, w, r) for t, w, r in _letters(wire)][:2] == [
        ("ruvon.step.Crashy.First", record.id, reason), ("ruvon.step", record.id, reason)]
    assert wire.run(wire.store.load_workflow(record.id)).version == record.version


def test_any_error_of_a_bad_message_is_a_dead_letter_but_a_database_outage_propagates(
        wire: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvon_workers.fleet.runtime import runtime_for

    coordinator = runtime_for(wire.app).coordinator

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(coordinator, "start", broken)
    assert wire.app.tasks["ruvon.start_workflow"](workflow_type="Ticked") == {
        "error": "TypeError: unhashable type: 'list'"}
    assert _letters(wire) == [("ruvon.start_workflow", None,
                               "TypeError: unhashable type: 'list'")]

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("connection refused")

    monkeypatch.setattr(coordinator, "start", down)
    monkeypatch.setattr(coordinator, "handle_step", down)
    with pytest.raises(Exception) as info:
        wire.app.tasks["ruvon.start_workflow"](workflow_type="Ticked")
    assert "connection refused" in str(info.value)
    with pytest.raises(Exception) as info:
        wire.app.tasks["ruvon.step"](workflow_id="x", step="First", version=1)
    assert "connection refused" in str(info.value)
    assert len(_letters(wire)) == 1


def test_a_step_message_sent_to_another_steps_task_is_refused_not_run(
        wire: SimpleNamespace) -> None:
    record = _start(wire)  # a Crashy run at its step First
    answer = wire.app.tasks["ruvon.step.Crashy.Die_Once"](
        workflow_id=record.id, step="First", version=record.version)
    assert answer == {"applied": False,
                      "reason": "step 'First' sent to the task of step 'Die_Once'"}
    # Hang has a step First too: its task refuses a Crashy run.
    answer = wire.app.tasks["ruvon.step.Hang.First"](
        workflow_id=record.id, step="First", version=record.version)
    reason = (f"workflow {record.id} is a 'Crashy', not a 'Hang': its step message went to "
              f"the task of another workflow type")
    assert answer == {"applied": False, "reason": reason}
    assert [t for t, _, _ in _letters(wire)] == ["ruvon.step.Crashy.Die_Once",
                                                 "ruvon.step.Hang.First"]
    stored = wire.run(wire.store.load_workflow(record.id))
    assert (stored.current_step, stored.version) == ("First", record.version)
    assert wire.outbox.sent == []
    # The step's own task, and the generic one, run it.
    assert wire.app.tasks["ruvon.step.Crashy.First"](
        workflow_id=record.id, step="First", version=record.version)["applied"] is True
    stored = wire.run(wire.store.load_workflow(record.id))
    assert wire.app.tasks["ruvon.step"](
        workflow_id=record.id, step="Die_Once", version=stored.version)["applied"] is True


def test_a_branch_message_sent_to_another_types_task_is_refused(
        wire: SimpleNamespace) -> None:
    record = _start(wire, "FanOut", n=2)
    assert wire.app.tasks["ruvon.step.FanOut.Prepare"](
        workflow_id=record.id, step="Prepare", version=record.version)["applied"] is True
    stored = wire.run(wire.store.load_workflow(record.id))
    assert wire.app.tasks["ruvon.step.FanOut.Score"](
        workflow_id=record.id, step="Score", version=stored.version)["applied"] is True
    stored = wire.run(wire.store.load_workflow(record.id))
    assert (stored.status, stored.current_step) == ("PENDING_ASYNC", "Score")
    answer = wire.app.tasks["ruvon.step.Bounded.Score"](
        workflow_id=record.id, step="Score", version=stored.version, branch=0)
    assert "is a 'FanOut', not a 'Bounded'" in answer["reason"]
    assert wire.app.tasks["ruvon.step.FanOut.Score"](
        workflow_id=record.id, step="Score", version=stored.version, branch=0)["applied"]
