"""What a step type cannot take, and data the database cannot hold, on both stores: each
is refused with an error that says where, and nothing stored is lost."""

from __future__ import annotations

import pytest

from ruvon_workers.errors import InvalidStateError, WorkflowFailedException

from ..helpers import create_in_process as _create
from ..helpers import run_while_active as _run


async def _failed(builder, persistence, data):
    wf = await _create(builder, persistence, "Misfits", data)
    with pytest.raises(WorkflowFailedException):
        await _run(wf)
    assert wf.status == "FAILED"
    return wf


async def test_a_nul_in_a_steps_result_fails_the_step_naming_the_field(types_builder,
                                                                      persistence):
    wf = await _failed(types_builder, persistence, {"mode": "nul", "items": [1, 2, 3]})
    assert wf.current_step_name == "Each_Item"
    assert "state field 'note' contains a NUL character" in wf.error["message"]
    stored = await persistence.load_workflow(wf.id)
    # The first iteration's commit stands; the refused one left nothing behind.
    assert stored.state["processed"] == [1] and stored.state["note"] == ""


async def test_a_nul_in_a_branch_result_fails_the_step_naming_the_field(types_builder,
                                                                       persistence):
    wf = await _failed(types_builder, persistence, {"mode": "branch_nul"})
    assert wf.current_step_name == "Branches"
    assert "branch result field 'note' contains a NUL character" in wf.error["message"]


@pytest.mark.parametrize(("mode", "refused"), [
    ("child", "a LOOP body cannot start sub-workflow 'Child'"),
    ("pause", "a LOOP body cannot pause"),
])
async def test_a_loop_body_cannot_start_a_sub_workflow_or_pause(types_builder, persistence,
                                                                mode, refused):
    wf = await _failed(types_builder, persistence, {"mode": mode, "items": [1, 2, 3]})
    assert wf.current_step_name == "Each_Item"
    assert "iteration 1" in wf.error["message"] and refused in wf.error["message"]
    assert await persistence.list_workflows(workflow_type="Child") == []


async def test_a_jump_from_a_loop_body_leaves_the_loop(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "Misfits",
                                  {"mode": "jump", "items": [1, 2, 3]}))
    assert wf.status == "COMPLETED"
    # Item 2 ran (its in-place change kept), item 3 did not; the PARALLEL step was skipped.
    assert wf.state.processed == [1, 2] and wf.state.finished and wf.state.note == ""


async def test_a_parallel_branch_cannot_start_a_sub_workflow(types_builder, persistence):
    wf = await _failed(types_builder, persistence, {"mode": "branch_child"})
    assert ("branch 0: a PARALLEL branch cannot start sub-workflow 'Child'"
            in wf.error["message"])
    assert await persistence.list_workflows(workflow_type="Child") == []


async def test_initial_data_and_input_with_a_nul_are_refused(types_builder, persistence):
    with pytest.raises(InvalidStateError, match=r"field 'note' contains a NUL"):
        await _create(types_builder, persistence, "Misfits", {"note": "a\x00b"})
    wf = await _run(await _create(types_builder, persistence, "Child",
                                  {"value": 1, "child_mode": "wait"}))
    assert wf.status == "WAITING_HUMAN"
    with pytest.raises(InvalidStateError, match=r"note: contains a NUL character"):
        await wf.next_step(user_input={"note": "x\x00"})
    stored = await persistence.load_workflow(wf.id)
    assert stored.status == "WAITING_HUMAN" and stored.version == wf.record.version
    await wf.next_step(user_input={"note": "fine"})
    assert (await _run(wf)).status == "COMPLETED"


async def test_a_start_sent_twice_with_its_own_id_makes_one_workflow(types_builder,
                                                                    persistence):
    first = types_builder.new_record("Misfits", {}, workflow_id="0b6c2f5e-7d0e-4b7f-9a51-"
                                                              "2f2d2a8f0c11")
    stored, created = await persistence.create_workflow(first)
    assert created
    again = types_builder.new_record("Misfits", {}, workflow_id=first.id)
    same, created = await persistence.create_workflow(again)
    assert not created and same.id == first.id and same.version == stored.version
    other = types_builder.new_record("Child", {}, workflow_id=first.id)
    with pytest.raises(InvalidStateError, match="already taken by another Misfits workflow"):
        await persistence.create_workflow(other)
    with pytest.raises(InvalidStateError, match="'abc' is not a UUID"):
        types_builder.new_record("Misfits", {}, workflow_id="abc")
    assert len(await persistence.list_workflows()) == 1
