"""The rules behind the step types: merging branches, templates, injection rules, cron
ticks, and the messages a bad PARALLEL/LOOP/CRON/injection definition gets."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ruvon_workers.definitions import load_registry
from ruvon_workers.definitions.models import InjectionRule, StepDefinition
from ruvon_workers.engine.steps.parallel import merge_into
from ruvon_workers.engine.templates import render_data, template_problems
from ruvon_workers.errors import DefinitionError, MergeConflict
from ruvon_workers.persistence import MemoryPersistenceProvider
from ruvon_workers.persistence.rows import ScheduleSpec
from ruvon_workers.scheduling import cron_problem, fire_due, next_tick, tick_key

from ..helpers import S, not_none, workflow_yaml, write_registry


def _step(**fields: Any) -> StepDefinition:
    return StepDefinition.model_validate({"name": "P", "type": "PARALLEL",
                                          "tasks": [{"name": "a", "function_path": "x"}],
                                          **fields})


def _merge(step: StepDefinition, state: dict[str, Any],
           *results: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    target = dict(state)
    owners: dict[tuple[str, ...], str] = {}
    for name, changes in results:
        merge_into(target, changes, step, owners, name)
    return target


def test_shallow_prefer_new_takes_the_later_branch_in_declared_order() -> None:
    merged = _merge(_step(), {"a": 1, "nested": {"x": 1}},
                    ("first", {"a": 2, "nested": {"y": 2}}), ("second", {"a": 3}))
    assert merged == {"a": 3, "nested": {"y": 2}}


def test_deep_merges_nested_dicts_key_by_key() -> None:
    merged = _merge(_step(merge_strategy="DEEP"), {"scores": {"old": 0}},
                    ("b1", {"scores": {"1": 1}}), ("b2", {"scores": {"2": 4}}))
    assert merged == {"scores": {"old": 0, "1": 1, "2": 4}}


def test_prefer_existing_keeps_the_state_and_the_earlier_branch() -> None:
    step = _step(merge_conflict_behavior="PREFER_EXISTING")
    merged = _merge(step, {"kept": "state", "empty": None},
                    ("first", {"kept": "first", "empty": "first", "new": "first"}),
                    ("second", {"empty": "second", "new": "second"}))
    assert merged == {"kept": "state", "empty": "first", "new": "first"}


def test_raise_error_names_the_key_and_both_branches_but_allows_agreement() -> None:
    step = _step(merge_conflict_behavior="RAISE_ERROR", merge_strategy="DEEP")
    same = _merge(step, {"v": 0}, ("a", {"v": 1}), ("b", {"v": 1}))
    assert same == {"v": 1}  # a state value being replaced is no conflict
    with pytest.raises(MergeConflict, match=r"'r\.x': branches 'a' and 'b'"):
        _merge(step, {}, ("a", {"r": {"x": 1}}), ("b", {"r": {"x": 2}}))


def test_templates_keep_types_and_format_text() -> None:
    state = {"customer": {"id": 7, "name": "Ada"}, "items": [1, 2]}
    rendered = render_data({"id": "{{ state.customer.id }}", "greeting": "Hi {{ customer.name }}!",
                            "first": ["{{ items[0] }}"], "fixed": 3}, state)
    assert rendered == {"id": 7, "greeting": "Hi Ada!", "first": [1], "fixed": 3}
    (problem,) = template_problems({"x": "{{ __import__('os') }}"})
    assert problem[0] == "initial_data_template.x" and "refused" in problem[1]


def test_templates_take_lengths_arithmetic_and_methods() -> None:
    state = {"customer": {"name": " ada "}, "items": [1, 2]}
    rendered = render_data({"shout": "{{ state.customer.name.strip().upper() }}",
                            "count": "{{ len(items) + 1 }}", "line": "{{ '-' * 3 }}"}, state)
    assert rendered == {"shout": "ADA", "count": 3, "line": "---"}


@pytest.mark.parametrize(("rule", "state", "expected"), [
    ({"condition_key": "risk", "value_match": "high"}, {"risk": "high"}, True),
    ({"condition_key": "risk", "value_match": "high"}, {"risk": "low"}, False),
    ({"condition_key": "state.check.result", "value_is_not": "ok"},
     {"check": {"result": "bad"}}, True),
    ({"condition_key": "check.result", "value_is_not": "ok"}, {"check": {"result": "ok"}},
     False),
    # A list is "none of these" (Ruvon's membership test); a scalar is "not this one".
    ({"condition_key": "risk", "value_is_not": ["low", "none"]}, {"risk": "high"}, True),
    ({"condition_key": "risk", "value_is_not": ["low", "none"]}, {"risk": "low"}, False),
    ({"condition_key": "risk", "value_is_not": ["low", "none"]}, {}, True),
    ({"condition_key": "tags", "value_is_not": ["a"]}, {"tags": ["a"]}, True),
])
def test_injection_rules_match(rule: dict[str, Any], state: dict[str, Any],
                               expected: bool) -> None:
    assert InjectionRule.model_validate(rule).matches(state) is expected


def test_cron_ticks_are_utc_and_bad_expressions_are_named() -> None:
    after = dt.datetime(2026, 11, 28, 5, 59, 59, tzinfo=dt.UTC)
    assert next_tick("0 6 * * *", after) == dt.datetime(2026, 11, 28, 6, 0, tzinfo=dt.UTC)
    assert next_tick("* * * * * */10", after).second == 0
    assert "not a cron expression" in (cron_problem("every day at six") or "")
    assert cron_problem("*/5 * * * *") is None


async def test_schedulers_racing_start_each_tick_once() -> None:
    store = MemoryPersistenceProvider()
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await store.upsert_schedule(ScheduleSpec(name="nightly", workflow_type="T",
                                             cron_expression="0 3 * * *", initial_data={"a": 1},
                                             next_run_at=due))
    started: dict[str, dict[str, Any]] = {}

    async def start(workflow_type: str, data: dict[str, Any], key: str) -> str:
        await asyncio.sleep(0)  # let the other scheduler interleave
        started.setdefault(key, data)  # the store's idempotency key: one workflow per key
        return key

    fired = await asyncio.gather(*(fire_due(store, start) for _ in range(3)))
    assert sum(fired) == 3 and list(started) == [tick_key("nightly", due)]
    (schedule,) = await store.list_schedules()
    assert schedule.runs == 1 and schedule.next_run_at.hour == 3
    assert await fire_due(store, start) == 0  # nothing due any more


def _problems(tmp_path: Path, steps: str) -> list[str]:
    path = write_registry(tmp_path, {"Test": workflow_yaml(steps)})
    with pytest.raises(DefinitionError) as info:
        load_registry(path)
    return [str(issue) for issue in info.value.issues]


def test_bad_parallel_and_loop_fields_are_named(tmp_path: Path) -> None:
    msgs = _problems(tmp_path, f"""
        - name: P
          type: PARALLEL
          iterate_over: state.path
          merge_strategy: SIDEWAYS
          merge_conflict_behavior: SULK
        - name: L
          type: LOOP
          mode: ITERATE
          loop_body: [{{name: x}}]
        - name: W
          type: LOOP
          mode: WHILE
          function: {S}.increment
    """)
    text = "\n".join(msgs)
    assert "step 'P'" in text and "field 'task_function'" in text
    assert "merge_strategy 'SIDEWAYS'" in text and "merge_conflict_behavior 'SULK'" in text
    assert "field 'iterate_over'" in text and "an ITERATE loop needs 'iterate_over'" in text
    assert "field 'loop_body[0].function'" in text
    assert "step 'W'" in text and "a WHILE loop needs 'while_condition'" in text


def test_a_bad_loop_body_entry_is_named(tmp_path: Path) -> None:
    msgs = _problems(tmp_path, f"""
        - name: L
          type: LOOP
          mode: WHILE
          while_condition: "count < 3"
          loop_body:
            - {{name: Check_API, type: HTTP, http_config: {{method: GET, url: "http://x"}}}}
            - {{name: Tally, type: STANDARD}}
            - {{name: Ok, type: standard, function: {S}.increment}}
            - {{function: {S}.nowhere}}
    """)
    assert len(msgs) == 3 and all("step 'L'" in m for m in msgs)
    assert "field 'loop_body[0].type'" in msgs[0]
    assert "loop_body[0] ('Check_API') is a HTTP step: a LOOP body runs functions" in msgs[0]
    assert "field 'loop_body[1].function'" in msgs[1]
    assert "loop_body[1] ('Tally') needs 'function'" in msgs[1]
    assert "field 'loop_body[3].function'" in msgs[2] and "'nowhere'" in msgs[2]


def test_a_negative_batch_size_is_refused(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, f"""
        - name: P
          type: PARALLEL
          iterate_over: state.path
          task_function: {S}.increment
          batch_size: -1
    """)
    assert "step 'P'" in msg and "field 'batch_size'" in msg
    assert "batch_size must be 0 (one item per branch, as when it is left out) or more" in msg


def test_a_parallel_task_names_one_function(tmp_path: Path) -> None:
    msgs = _problems(tmp_path, f"""
        - name: P
          type: PARALLEL
          tasks:
            - {{name: both, function: {S}.increment, function_path: {S}.boom}}
            - {{name: none}}
        - name: Q
          type: PARALLEL
          tasks:
            - {{name: ok, function: {S}.increment}}
            - {{name: missing, function: {S}.nowhere}}
    """)
    text = "\n".join(msgs)
    assert len(msgs) == 3 and "step 'P'" in text and "step 'Q'" in text
    assert "field 'tasks.0'" in text and "a task names two functions" in text
    assert "field 'tasks.1'" in text and "a task needs 'function' (or 'function_path')" in text
    assert "field 'tasks[1].function'" in text and "has no attribute 'nowhere'" in text


def test_a_cron_schedule_step_names_one_cron_expression(tmp_path: Path) -> None:
    msgs = _problems(tmp_path, """
        - name: Both
          type: CRON_SCHEDULE
          target_workflow_type: Test
          schedule: "0 6 * * *"
          cron_expression: "0 7 * * *"
        - name: Neither
          type: CRON_SCHEDULE
          target_workflow_type: Test
        - name: Bad
          type: CRON_SCHEDULE
          target_workflow_type: Test
          schedule: "at noon"
    """)
    assert len(msgs) == 3 and all("field 'schedule'" in m for m in msgs)
    assert "step 'Both'" in msgs[0] and "two cron expressions" in msgs[0]
    assert "step 'Neither'" in msgs[1] and "needs 'schedule' (or 'cron_expression')" in msgs[1]
    assert "step 'Bad'" in msgs[2] and "'at noon' is not a cron expression" in msgs[2]


def test_bad_cron_target_template_and_injection_are_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    msgs = _problems(tmp_path, f"""
        - name: C
          type: CRON_SCHEDULE
          target_workflow_type: Nowhere
          cron_expression: "at noon"
          initial_data_template: {{x: "{{{{ os.system('id') or __x }}}}"}}
        - name: I
          function: {S}.increment
          dynamic_injection:
            rules:
              - condition_key: count
                action: INSERT_BEFORE
                steps_to_insert: [{{name: X, function: {S}.increment}}]
    """)
    text = "\n".join(msgs)
    assert "step 'C'" in text and "'at noon' is not a cron expression" in text
    assert "field 'initial_data_template.x'" in text
    # As on Ruvon, a rule with another action than INSERT_AFTER_CURRENT is skipped; loading
    # says so, naming the step and the field.
    assert "step 'I'" not in text
    assert ("step 'I', field 'dynamic_injection.rules[0].action': action 'INSERT_BEFORE' "
            "does nothing") in caplog.text


def test_target_workflow_type_must_be_in_the_registry(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, """
        - name: Spawn
          type: FIRE_AND_FORGET
          target_workflow_type: Nowhere
    """)
    assert "step 'Spawn'" in msg and "field 'target_workflow_type'" in msg
    assert "'Nowhere' is not in the registry (known: Test)" in msg


async def test_a_tick_for_a_type_this_worker_lacks_is_left_to_another() -> None:
    from ruvon_workers.errors import UnknownWorkflowType

    store = MemoryPersistenceProvider()
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await store.upsert_schedule(ScheduleSpec(name="other-team", workflow_type="Elsewhere",
                                             cron_expression="0 3 * * *", initial_data={},
                                             next_run_at=due))

    async def lacks(workflow_type: str, data: dict[str, Any], key: str) -> str:
        raise UnknownWorkflowType(workflow_type, ["Mine"])

    async def has(workflow_type: str, data: dict[str, Any], key: str) -> str:
        return "started"

    assert await fire_due(store, lacks) == 0
    (schedule,) = await store.list_schedules()
    assert schedule.next_run_at == due and schedule.runs == 0  # still due
    assert await fire_due(store, has) == 1
    (schedule,) = await store.list_schedules()
    assert schedule.runs == 1 and schedule.last_workflow_id == "started"


async def test_a_database_error_leaves_the_tick_due() -> None:
    from ruvon_workers.persistence.postgres import DatabaseError

    store = MemoryPersistenceProvider()
    due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await store.upsert_schedule(ScheduleSpec(name="n", workflow_type="T",
                                             cron_expression="0 3 * * *", initial_data={},
                                             next_run_at=due))

    async def down(workflow_type: str, data: dict[str, Any], key: str) -> str:
        raise DatabaseError("statement timeout")

    with pytest.raises(DatabaseError):
        await fire_due(store, down)
    (schedule,) = await store.list_schedules()
    assert schedule.next_run_at == due and schedule.runs == 0


async def test_a_scheduler_back_from_downtime_fires_the_latest_missed_tick_once() -> None:
    store = MemoryPersistenceProvider()
    now = dt.datetime.now(dt.UTC)
    due = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=3)  # 3 ticks missed
    await store.upsert_schedule(ScheduleSpec(name="minutely", workflow_type="T",
                                             cron_expression="* * * * *", initial_data={},
                                             next_run_at=due))
    keys: list[str] = []

    async def start(workflow_type: str, data: dict[str, Any], key: str) -> str:
        keys.append(key)
        return key

    assert await fire_due(store, start) == 1
    (schedule,) = await store.list_schedules()
    fired = not_none(schedule.last_run_at)
    assert due + dt.timedelta(minutes=3) <= fired <= dt.datetime.now(dt.UTC)
    assert keys == [tick_key("minutely", fired)] and schedule.runs == 1
    assert schedule.next_run_at == fired + dt.timedelta(minutes=1)


async def test_schedules_of_types_this_worker_lacks_do_not_crowd_out_its_own() -> None:
    store = MemoryPersistenceProvider()
    now = dt.datetime.now(dt.UTC)
    for name, workflow_type, ago in (("theirs", "Elsewhere", 60), ("mine", "Mine", 1)):
        await store.upsert_schedule(ScheduleSpec(name=name, workflow_type=workflow_type,
                                                 cron_expression="0 3 * * *", initial_data={},
                                                 next_run_at=now - dt.timedelta(seconds=ago)))

    async def start(workflow_type: str, data: dict[str, Any], key: str) -> str:
        assert workflow_type == "Mine"
        return "started"

    # One schedule per round: the older foreign one would otherwise take the slot forever.
    assert await fire_due(store, start, limit=1, workflow_types=["Mine"]) == 1
    runs = {s.name: s.runs for s in await store.list_schedules()}
    assert runs == {"theirs": 0, "mine": 1}


def test_max_branches_below_1_is_refused(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, f"""
        - name: P
          type: PARALLEL
          iterate_over: state.path
          task_function: {S}.increment
          max_branches: 0
    """)
    assert "step 'P'" in msg and "field 'max_branches'" in msg
    assert "max_branches must be 1 or more" in msg


async def test_a_while_loop_without_max_iterations_stops_after_1000_rounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvon_workers import WorkflowBuilder
    from ruvon_workers.execution import SyncExecutionProvider

    from ..helpers import FLEET_REGISTRY

    monkeypatch.delenv("RUVON_MAX_LOOP_ITERATIONS", raising=False)
    store = MemoryPersistenceProvider()
    wf = await WorkflowBuilder.from_registry(FLEET_REGISTRY).create_workflow(
        "Bounded", {"countdown": 1005}, persistence_provider=store,
        execution_provider=SyncExecutionProvider())
    await wf.next_step()  # in-process, one next_step runs the whole loop
    assert wf.current_step_name == "Process" and wf.record.state["ticks"] == 1000
    (done,) = [h for h in await wf.history()
               if h.step == "Count_Down" and h.status == "COMPLETED"]
    assert done.detail == {"iterations": 1000, "stopped": "max_iterations (1000) reached "
                                                         "with while_condition still true",
                           "changed": {"countdown": 5, "ticks": 1000}}
