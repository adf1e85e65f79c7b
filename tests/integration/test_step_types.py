"""Every step type in-process (``SyncExecutionProvider``), on both stores."""

from __future__ import annotations

import pytest

from ruvon_workers.errors import InvalidTransition, WorkflowFailedException
from ruvon_workers.execution import SyncExecutionProvider

from ..helpers import create_in_process as _create
from ..helpers import run_while_active as _run


async def test_dynamic_parallel_merges_every_item(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "FanOut", {"n": 12}))
    assert wf.status == "COMPLETED"
    assert wf.state.scores == {str(i): i * i for i in range(12)}
    assert wf.state.done is True
    completed = [h for h in await wf.history() if h.step == "Score"]
    assert completed[-1].detail["branches"] == 12


async def test_parallel_conflict_raise_error_names_the_key(types_builder, persistence):
    wf = await _create(types_builder, persistence, "Conflicts", {})
    with pytest.raises(WorkflowFailedException, match="merge conflict on 'winner'"):
        await wf.next_step()
    assert wf.status == "FAILED"
    assert "'credit' and 'fraud'" in wf.error["message"]


async def test_loop_iterates_then_while_loop_runs_to_its_condition(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "LoopItems",
                                  {"items": [1, 2, 3, 4], "countdown": 3}))
    assert wf.status == "COMPLETED"
    assert wf.state.processed == [10, 20, 30, 40]
    assert wf.state.countdown == 0 and wf.state.ticks == 3
    iterations = [h.detail["iteration"] for h in await wf.history() if h.status == "ITERATED"]
    assert iterations == [0, 1, 2, 0, 1]


async def test_a_while_loop_ends_at_max_iterations_and_says_so(types_builder, persistence):
    # As on Ruvon: a bounded poll. The run goes on; the LOOP's history row says why.
    wf = await _create(types_builder, persistence, "LoopItems", {"items": [1, 2],
                                                                 "countdown": 9})
    await _run(wf)
    assert wf.status == "COMPLETED" and wf.state.ticks == 5 and wf.state.countdown == 4
    (done,) = [h for h in await wf.history()
               if h.step == "Count_Down" and h.status == "COMPLETED"]
    assert done.detail is not None and done.detail["iterations"] == 5
    assert done.detail["stopped"] == ("max_iterations (5) reached with while_condition "
                                      "still true")


async def test_a_list_longer_than_max_iterations_fails_with_the_reason(types_builder,
                                                                      persistence):
    wf = await _create(types_builder, persistence, "LoopItems",
                       {"items": list(range(51)), "countdown": 1})
    with pytest.raises(WorkflowFailedException, match=r"51 items, more than max_iterations"):
        await _run(wf)
    assert wf.current_step_name == "Process"


async def test_loops_and_fan_outs_without_their_own_bounds(types_builder, persistence,
                                                      monkeypatch):
    # A WHILE loop without max_iterations stops at RUVON_MAX_LOOP_ITERATIONS (an ITERATE
    # loop without one takes every item); a step's max_branches wins over RUVON_MAX_BRANCHES.
    monkeypatch.setenv("RUVON_MAX_LOOP_ITERATIONS", "4")
    monkeypatch.setenv("RUVON_MAX_BRANCHES", "1")
    wf = await _run(await _create(types_builder, persistence, "Bounded",
                                  {"countdown": 9, "items": [1, 2, 3, 4, 5]}))
    assert wf.status == "COMPLETED" and wf.state.ticks == 4 and wf.state.countdown == 5
    assert wf.state.processed == [10, 20, 30, 40, 50]
    assert wf.state.scores == {str(i): i * i for i in range(1, 6)}
    history = await wf.history()
    (done,) = [h for h in history if h.step == "Count_Down" and h.status == "COMPLETED"]
    assert done.detail is not None and done.detail["stopped"] == (
        "max_iterations (4) reached with while_condition still true")
    (scored,) = [h for h in history if h.step == "Score" and h.status == "COMPLETED"]
    assert scored.detail is not None and scored.detail["branches"] == 3  # batch_size: 2


async def _no_branch_stored(persistence, wf):
    for version in range(wf.record.version + 1):
        assert await persistence.list_branches(wf.id, version) == []


async def test_more_branches_than_max_branches_fail_the_step_before_any_is_stored(
        types_builder, persistence):
    wf = await _create(types_builder, persistence, "Bounded", {"items": list(range(7))})
    with pytest.raises(WorkflowFailedException):
        await _run(wf)
    assert wf.status == "FAILED" and wf.current_step_name == "Score"
    assert wf.error["message"] == ("Step 'Score' failed: 4 branches, more than max_branches "
                                   "(3); batch_size runs several items per branch")
    await _no_branch_stored(persistence, wf)


@pytest.mark.parametrize(("env", "n", "limit"), [(None, 1001, 1000), ("5", 12, 5)])
async def test_a_fan_out_without_max_branches_is_bounded_by_ruvon_max_branches(
        types_builder, persistence, monkeypatch, env, n, limit):
    if env:
        monkeypatch.setenv("RUVON_MAX_BRANCHES", env)
    wf = await _create(types_builder, persistence, "FanOut", {"n": n})
    with pytest.raises(WorkflowFailedException):
        await _run(wf)
    assert wf.status == "FAILED" and wf.current_step_name == "Score"
    assert wf.error["message"].startswith(
        f"Step 'Score' failed: {n} branches, more than max_branches ({limit}, the default "
        "from RUVON_MAX_BRANCHES; set max_branches on the step to allow more)")
    await _no_branch_stored(persistence, wf)


async def test_sub_workflow_completes_into_the_parent(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "Parent", {"value": 21}))
    assert wf.status == "COMPLETED"
    assert wf.state.result == 42 and wf.state.after is True
    child_id = (wf.record.runtime.child or {}).get("id") or next(
        h.detail["sub_workflow_id"] for h in await wf.history()
        if h.detail and "sub_workflow_id" in h.detail)
    child = await persistence.load_workflow(child_id)
    assert child.status == "COMPLETED" and child.parent_id == wf.id


async def test_failed_child_fails_the_parent(types_builder, persistence):
    wf = await _create(types_builder, persistence, "Parent", {"value": 1, "child_mode": "fail"})
    with pytest.raises(WorkflowFailedException, match="sub-workflow Child"):
        await _run(wf)
    assert wf.status == "FAILED_CHILD_WORKFLOW"
    assert wf.error["child_status"] == "FAILED"


async def test_failed_child_runs_the_parents_saga(types_builder, persistence):
    wf = await _create(types_builder, persistence, "SagaParent",
                       {"value": 1, "child_mode": "fail"})
    with pytest.raises(WorkflowFailedException, match="sub-workflow Child"):
        await _run(wf)
    assert wf.status == "FAILED_ROLLED_BACK"
    assert wf.state.undone == ["Reserve"] and wf.error["compensated"] == ["Reserve"]


async def test_child_waiting_for_input_is_visible_and_parent_resumes(types_builder,
                                                                     persistence):
    wf = await _run(await _create(types_builder, persistence, "Parent",
                                  {"value": 5, "child_mode": "wait"}))
    assert wf.status == "WAITING_CHILD_HUMAN_INPUT"  # Ruvon's status for it
    child_info = wf.record.runtime.child or {}
    assert (child_info["status"], child_info["current_step"]) == ("WAITING_HUMAN", "Wait_Note")
    with pytest.raises(InvalidTransition, match="WAITING_HUMAN at step 'Wait_Note'"):
        await wf.next_step()
    child = await types_builder.load_workflow(child_info["id"], persistence_provider=persistence,
                                              execution_provider=SyncExecutionProvider())
    await child.next_step(user_input={"note": "fine"})
    await _run(child)
    assert child.status == "COMPLETED"
    await wf.next_step()
    await _run(wf)
    assert wf.status == "COMPLETED" and wf.state.result == 10


async def test_fire_and_forget_stores_the_id_and_moves_on(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "Spawner", {"label": "x"}))
    assert wf.status == "COMPLETED" and wf.state.done
    spawned = await persistence.load_workflow(wf.state.spawned_id)
    assert spawned.workflow_type == "Ticked" and spawned.state["label"] == "x"
    assert spawned.parent_id is None and spawned.status == "COMPLETED"


async def test_cron_schedule_step_stores_the_schedule(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "Scheduler", {"label": "L"}))
    assert wf.status == "COMPLETED"
    (schedule,) = await persistence.list_schedules()
    assert schedule.name == "test-every-2s"
    assert schedule.workflow_type == "Ticked"
    assert schedule.initial_data == {"label": "tick of L"}
    # Running the step again keeps one schedule (stored by name).
    await _run(await _create(types_builder, persistence, "Scheduler", {"label": "L"}))
    assert len(await persistence.list_schedules()) == 1


@pytest.mark.parametrize(("amount", "path"), [
    (50, ["Assess", "Finish"]),
    (5000, ["Assess", "Manual_Review", "Second_Review", "Finish"]),
])
async def test_dynamic_injection_inserts_after_the_current_step(types_builder, persistence,
                                                                amount, path):
    wf = await _run(await _create(types_builder, persistence, "Inject", {"amount": amount}))
    assert wf.status == "COMPLETED"
    assert wf.state.path == path


async def test_merge_function_partial_success_and_a_failed_branch(types_builder, persistence):
    wf = await _create(types_builder, persistence, "Merging", {})
    await wf.next_step()
    assert wf.state.winner == "credit+fraud" and wf.state.checked == ["2 results"]
    await wf.next_step()  # one branch fails (after its retry); partial success is allowed
    assert wf.current_step_name == "Strict"
    partial = [h for h in await wf.history() if h.step == "Partial"][-1]
    assert partial.detail["failed_branches"] == [
        {"branch": "broken", "error": "the fraud service is down"}]
    with pytest.raises(WorkflowFailedException, match="1 of 2 branches failed; first, "
                                                      "'broken': the fraud service is down"):
        await wf.next_step()
    assert wf.status == "FAILED" and wf.error["step"] == "Strict"


async def test_in_process_timeout_cuts_off_an_async_branch(types_builder, persistence):
    wf = await _create(types_builder, persistence, "Stalling", {})
    await wf.next_step()
    assert wf.status == "COMPLETED" and wf.state.winner == "fraud"
    (joined,) = [h for h in await wf.history() if h.status == "COMPLETED"]
    assert joined.detail["failed_branches"] == [
        {"branch": "stalled", "error": "did not report within timeout_seconds (0.3 s)"}]


async def test_an_injected_step_that_pauses_waits_then_goes_on(types_builder, persistence):
    wf = await _run(await _create(types_builder, persistence, "InjectPause", {"amount": 5000}))
    assert wf.status == "WAITING_HUMAN" and wf.current_step_name == "Hold_For_Review"
    assert wf.state.path == ["Assess", "paused"]
    await wf.next_step({})
    await _run(wf)
    assert wf.status == "COMPLETED"
    assert wf.state.path == ["Assess", "paused", "Reviewed", "Finish"]
