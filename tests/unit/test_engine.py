"""The step state machine, in process, on the in-memory store."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruvon_workers import SagaWorkflowException, WorkflowBuilder, WorkflowFailedException
from ruvon_workers.errors import InvalidStateError, InvalidTransition, UnknownWorkflowType
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import MemoryPersistenceProvider

from ..fixtures.models import CounterState
from ..helpers import S, builder_for

SYNC = SyncExecutionProvider()


async def start(builder: WorkflowBuilder, data: dict | None = None, wf_type: str = "Test"):
    return await builder.create_workflow(wf_type, data or {},
                                         persistence_provider=MemoryPersistenceProvider(),
                                         execution_provider=SYNC)


async def run_all(wf) -> None:
    while wf.status == "ACTIVE":
        await wf.next_step()


async def test_results_and_in_place_changes_merge(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n"
                              f"- name: B\n  function: {S}.async_increment\n")
    wf = await start(b)
    result, jumped = await wf.next_step()
    assert result == {"count": 1} and jumped is None
    await run_all(wf)
    assert wf.status == "COMPLETED"
    assert wf.state.count == 11 and wf.state.path == ["A", "B"]
    assert [(h.step, h.status) for h in await wf.history()] == [
        ("A", "CREATED"), ("A", "COMPLETED"), ("B", "COMPLETED")]


async def test_automate_next_chains_steps_in_one_call(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n  automate_next: true\n"
                              f"- name: B\n  function: {S}.increment\n  automate_next: true\n"
                              f"- name: C\n  function: {S}.increment\n")
    wf = await start(b)
    await wf.next_step()
    assert wf.status == "COMPLETED" and wf.state.count == 3


async def test_decision_routes_and_jump_directive(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: Start
          function: {S}.increment
        - name: Route
          type: DECISION
          routes:
            - condition: "count >= 1"
              target: Jump
            - default: Skipped
        - name: Skipped
          function: {S}.increment
        - name: Jump
          type: DECISION
          function: {S}.jump_to_end
        - name: Middle
          function: {S}.increment
        - name: End
          function: {S}.async_increment
        """)
    wf = await start(b)
    await wf.next_step()
    assert await wf.next_step() == (None, "Jump")
    assert await wf.next_step() == (None, "End")
    await run_all(wf)
    assert wf.state.path == ["Start", "Jump", "End"] and wf.state.count == 11


async def test_jump_to_unknown_step_fails_the_workflow(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.jump_nowhere\n")
    wf = await start(b)
    with pytest.raises(WorkflowFailedException, match="Nowhere"):
        await wf.next_step()
    assert wf.status == "FAILED"


async def test_step_result_the_model_rejects_fails_and_keeps_state(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n"
                              f"- name: B\n  function: {S}.too_big\n")
    wf = await start(b)
    await wf.next_step()
    with pytest.raises(WorkflowFailedException) as info:
        await wf.next_step()
    assert "limit" in str(info.value) and "less than or equal to 100" in str(info.value)
    assert wf.status == "FAILED" and wf.error["step"] == "B"
    assert wf.state.limit == 100 and wf.state.count == 1  # stored state unchanged


async def test_step_returning_a_non_dict_fails(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.not_a_dict\n")
    wf = await start(b)
    with pytest.raises(WorkflowFailedException, match="returned list"):
        await wf.next_step()


async def test_human_in_loop_pauses_validates_and_resumes(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: A
          function: {S}.increment
        - name: Review
          type: HUMAN_IN_LOOP
          function: {S}.take_note
          input_model: tests.fixtures.models.NoteInput
        - name: C
          function: {S}.increment
        """)
    wf = await start(b)
    await wf.next_step()
    assert wf.status == "WAITING_HUMAN" and wf.current_step_name == "Review"
    with pytest.raises(InvalidStateError) as info:
        await wf.next_step({"note": "ok", "score": 99})
    message = str(info.value)
    assert "Review" in message and "note" in message and "score" in message
    assert wf.status == "WAITING_HUMAN"  # a rejection leaves it waiting
    await wf.next_step({"note": "looks good", "score": 7})
    assert wf.status == "ACTIVE" and wf.state.label == "looks good (7)"
    await run_all(wf)
    assert wf.status == "COMPLETED"


async def test_human_in_loop_without_function_merges_input(tmp_path: Path) -> None:
    b = builder_for(tmp_path, "- name: Ask\n  type: HUMAN_IN_LOOP\n  required_input: [label]\n")
    wf = await start(b)
    assert wf.status == "WAITING_HUMAN"
    with pytest.raises(InvalidStateError, match="label: Field required"):
        await wf.next_step({})
    await wf.next_step({"label": "from a human"})
    assert wf.status == "COMPLETED" and wf.state.label == "from a human"


async def test_a_pause_waits_at_its_step_and_resume_goes_on_with_the_next(
        tmp_path: Path) -> None:
    # Ruvon: the pause's result is not merged; resumed, the run goes on after the paused
    # step, in the same call, and the input reaches that step on its context.
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.pause_for_review\n"
                              f"- name: B\n  function: {S}.use_input\n")
    wf = await start(b)
    result, _ = await wf.next_step()
    assert result == {"label": "under review"}
    assert wf.status == "WAITING_HUMAN" and wf.current_step_name == "A"
    assert wf.state.label != "under review"
    await wf.next_step({"amount": 5})
    assert wf.status == "COMPLETED" and wf.state.count == 5


async def test_a_paused_last_step_completes_the_run_when_resumed(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n"
                              f"- name: B\n  function: {S}.pause_for_review\n")
    wf = await start(b)
    await wf.next_step()
    await wf.next_step()
    assert wf.status == "WAITING_HUMAN" and wf.current_step_name == "B"
    await wf.next_step({"ok": True})
    assert wf.status == "COMPLETED" and wf.state.count == 1


async def test_input_reaches_only_functions_that_take_it(tmp_path: Path) -> None:
    # Ruvon's convention: a STANDARD step gets no input keywords (the input is on its
    # context); a HUMAN_IN_LOOP function gets the keywords it declares (all of them
    # with **kwargs).
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.pause_for_review\n"
                              f"- name: B\n  function: {S}.increment\n"
                              f"- name: C\n  function: {S}.pause_for_review\n"
                              f"- name: D\n  function: {S}.use_input\n"
                              f"- name: E\n  type: HUMAN_IN_LOOP\n"
                              f"  function: {S}.use_input\n")
    wf = await start(b)
    await wf.next_step()
    await wf.next_step({"amount": 5, "note": "ignored by B"})
    assert wf.status == "ACTIVE" and wf.current_step_name == "C"
    assert wf.state.count == 1 and wf.state.path == ["B"]
    await wf.next_step()
    await wf.next_step({"amount": 5, "extra": True})
    assert wf.current_step_name == "E" and wf.state.count == 6
    assert wf.state.path == ["B"]  # D's function got no keywords
    await wf.next_step({"amount": 2, "extra": True})
    assert wf.status == "COMPLETED" and wf.state.count == 8
    assert wf.state.path == ["B", "extra"]


async def test_saga_exception_in_ruvons_form_rolls_back(tmp_path: Path) -> None:
    exc = SagaWorkflowException("Charge", RuntimeError("card declined"))
    assert str(exc) == "Saga step 'Charge' failed: card declined" and exc.step == "Charge"
    failed = WorkflowFailedException("wf-1", "Charge", ValueError("no stock"))
    assert (failed.workflow_id, failed.step_name) == ("wf-1", "Charge")
    assert str(failed) == "step 'Charge' failed: no stock"
    assert str(WorkflowFailedException("plain message")) == "plain message"


async def test_a_jump_stops_automate_next_at_its_target(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.jump_to_end\n"
                              f"  automate_next: true\n"
                              f"- name: B\n  function: {S}.increment\n"
                              f"- name: End\n  function: {S}.increment\n")
    wf = await start(b)
    assert await wf.next_step() == (None, "End")
    assert wf.status == "ACTIVE" and wf.current_step_name == "End" and wf.state.count == 0
    await wf.next_step()
    assert wf.status == "COMPLETED" and wf.state.count == 1


async def test_saga_compensates_in_reverse_order(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: A
          function: {S}.increment
          compensate_function: {S}.undo
        - name: B
          function: {S}.increment
        - name: C
          function: {S}.increment
          compensate_function: {S}.undo
        - name: D
          function: {S}.boom
        """, saga=True)
    wf = await start(b)
    with pytest.raises(SagaWorkflowException) as info:
        await run_all(wf)
    assert info.value.compensated == ["C", "A"]
    assert wf.status == "FAILED_ROLLED_BACK"
    assert wf.state.undone == ["C", "A"]
    assert wf.error["step"] == "D" and "carrier is on fire" in wf.error["message"]
    rows = [(h.step, h.status) for h in await wf.history()]
    assert rows[-3:] == [("D", "FAILED"), ("C", "COMPENSATED"), ("A", "COMPENSATED")]


async def test_failure_without_saga_is_failed(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n"
                              f"  compensate_function: {S}.undo\n- name: D\n  function: {S}.boom\n")
    wf = await start(b)
    with pytest.raises(WorkflowFailedException):
        await run_all(wf)
    assert wf.status == "FAILED" and wf.state.undone == []


async def test_retry_policy_retries_then_succeeds(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: F
          function: {S}.flaky
          retry_policy: {{max_attempts: 3, delay_seconds: 0.01, jitter: false}}
        """)
    from tests.fixtures.steps import KEYS

    KEYS.clear()
    wf = await start(b, {"failures_left": 2})
    await wf.next_step()
    assert wf.status == "COMPLETED" and wf.state.label == "ok on attempt 3"
    statuses = [h.status for h in await wf.history()]
    assert statuses == ["CREATED", "RETRYING", "RETRYING", "COMPLETED"]
    # Every attempt of one step execution shares its idempotency key.
    assert KEYS == [f"{wf.id}:F:0"] * 3


async def test_exhausted_retries_fail_with_the_error(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: F
          function: {S}.flaky
          retry_policy: {{max_attempts: 2, delay_seconds: 0.01}}
        """)
    wf = await start(b, {"failures_left": 5})
    with pytest.raises(WorkflowFailedException, match="flaky attempt 2"):
        await wf.next_step()
    assert wf.error["type"] == "ConnectionError"


async def test_cancel_and_terminal_states(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n"
                              f"- name: B\n  function: {S}.increment\n")
    wf = await start(b)
    await wf.next_step()
    await wf.cancel("customer changed their mind")
    assert wf.status == "CANCELLED" and wf.error["message"] == "customer changed their mind"
    with pytest.raises(InvalidTransition, match="CANCELLED"):
        await wf.next_step()
    with pytest.raises(InvalidTransition):
        await wf.cancel("again")


async def test_a_cancel_records_who_asked(tmp_path: Path) -> None:
    from ruvon_workers.engine.machine import Cancel, decide
    from ruvon_workers.execution.operations import cancel_tree

    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n")
    wf = await start(b)
    transition = await decide(wf.definition, wf.record, Cancel("stop", by="olga"))
    assert transition is not None
    assert transition.history[0].detail == {"reason": "stop", "by": "olga"}
    transition = await decide(wf.definition, wf.record, Cancel("stop"))
    assert transition is not None and transition.history[0].detail == {"reason": "stop"}

    async def ended(_: object) -> None:
        pass

    async def definition(_: object) -> object:
        return wf.definition

    await cancel_tree(wf.persistence, definition, wf.id, "enough", ended,  # type: ignore[arg-type]
                      by="olga")
    last = (await wf.history())[-1]
    assert (last.status, last.detail) == ("CANCELLED", {"reason": "enough", "by": "olga"})


async def test_bad_initial_data_and_unknown_type(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n")
    with pytest.raises(InvalidStateError) as info:
        await start(b, {"count": "many"})
    assert "count" in str(info.value) and "CounterState" in str(info.value)
    with pytest.raises(UnknownWorkflowType, match="Known types: Test"):
        await start(b, {}, wf_type="Nope")


async def test_idempotency_key_returns_the_same_workflow(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n")
    store = MemoryPersistenceProvider()
    first = await b.create_workflow("Test", {"count": 1}, persistence_provider=store,
                                    execution_provider=SYNC, idempotency_key="k1")
    second = await b.create_workflow("Test", {"count": 2}, persistence_provider=store,
                                     execution_provider=SYNC, idempotency_key="k1")
    assert first.id == second.id and isinstance(second.state, CounterState)
    assert second.state.count == 1


def test_import_cache_is_shared_and_class_level(tmp_path: Path) -> None:
    WorkflowBuilder._import_cache.clear()
    b = builder_for(tmp_path, f"- name: A\n  function: {S}.increment\n")
    assert f"{S}.increment" in WorkflowBuilder._import_cache
    assert WorkflowBuilder._import_from_string(f"{S}.increment") is b.definition("Test").function(
        f"{S}.increment")


def test_the_ruvon_docs_names_for_a_waiting_workflow_are_read_as_waiting_human() -> None:
    from ruvon_workers.engine.records import Status

    assert Status("WAITING_HUMAN_INPUT") is Status.WAITING_HUMAN
    assert Status.parse("paused") is Status.WAITING_HUMAN
    assert Status.parse(" failed ") is Status.FAILED
    with pytest.raises(ValueError, match="unknown status 'DONE'; one of: ACTIVE"):
        Status.parse("DONE")
