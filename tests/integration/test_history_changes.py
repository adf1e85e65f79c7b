"""The history rows say what each step changed in the state, on every store."""

from __future__ import annotations

import pytest

from ruvon_workers import WorkflowFailedException

from ..helpers import S, builder_for
from ..helpers import create_in_process as _create
from ..helpers import run_while_active as _run


async def test_each_completed_step_records_the_keys_it_changed(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "FanOut", {"n": 3}))
    assert wf.status == "COMPLETED"
    rows = {h.step: h.detail for h in await wf.history() if h.status == "COMPLETED"}
    assert rows["Prepare"] == {"changed": {"items": [0, 1, 2]}}
    # The PARALLEL join: the merged branches' results, with the join's own detail.
    assert rows["Score"] == {"changed": {"scores": {"0": 0, "1": 1, "2": 4}}, "branches": 3}
    assert rows["Finish"] == {"changed": {"done": True}}


async def test_loop_iterations_record_their_own_changes(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "LoopItems",
                                  {"items": [1, 2], "countdown": 2}))
    assert wf.status == "COMPLETED"
    rows = [(h.step, h.status, h.detail) for h in await wf.history()
            if h.status in ("ITERATED", "COMPLETED")]
    assert rows == [
        # An in-place change by the loop body counts like a returned one.
        ("Process", "ITERATED", {"iteration": 0, "changed": {"processed": [10]}}),
        ("Process", "COMPLETED", {"changed": {"processed": [10, 20]}, "iterations": 2}),
        ("Count_Down", "ITERATED", {"iteration": 0,
                                    "changed": {"countdown": 1, "ticks": 1}}),
        ("Count_Down", "COMPLETED", {"changed": {"countdown": 0, "ticks": 2},
                                     "iterations": 2})]


async def test_a_step_that_changes_nothing_records_no_changes(types_builder, persistence):
    # Both loops have nothing to do: each completes at once, the state as it was.
    wf = await _run(await _create(types_builder, persistence, "LoopItems", {}))
    assert wf.status == "COMPLETED"
    details = [h.detail for h in await wf.history() if h.status == "COMPLETED"]
    assert details == [None, None]


async def test_a_failed_step_records_the_changes_it_left_in_the_state(tmp_path, persistence):
    builder = builder_for(tmp_path, f"""
        - name: Begin
          function: {S}.increment
        - name: Break
          function: {S}.change_then_fail
        """)
    wf = await _create(builder, persistence, "Test", {})
    with pytest.raises(WorkflowFailedException):
        await _run(wf)
    assert wf.status == "FAILED" and wf.state.path == ["Begin", "Break"]
    failed, = [h for h in await wf.history() if h.status == "FAILED"]
    assert failed.step == "Break"
    assert failed.detail == {"changed": {"path": ["Begin", "Break"], "label": "half done"}}
