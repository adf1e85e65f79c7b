"""Ruvon SDK spellings of the workflow YAML load and run here with the same meaning as
this project's own: in-process on the memory store, and the PARALLEL merges also through
the fleet's coordinator (each branch its own message)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ruvon_workers import WorkflowBuilder, WorkflowFailedException
from ruvon_workers.execution import SyncExecutionProvider
from ruvon_workers.persistence import MemoryPersistenceProvider

from ..helpers import S, builder_for, run_while_active, workflow_yaml, write_registry
from .test_coordinator_rules import Outbox

Y = "tests.fixtures.ruvon_yaml_steps"
MERGE_STATE = "tests.fixtures.models.MergeState"


def merge_builder(tmp_path: Path, steps: str) -> WorkflowBuilder:
    """A builder of ``steps`` over ``MergeState``."""
    return WorkflowBuilder.from_registry(write_registry(
        tmp_path, {"Test": workflow_yaml(steps)}, state_model=MERGE_STATE))


async def start(builder: WorkflowBuilder, data: dict | None = None, wf_type: str = "Test"):
    return await builder.create_workflow(wf_type, data or {},
                                         persistence_provider=MemoryPersistenceProvider(),
                                         execution_provider=SyncExecutionProvider())


async def test_a_next_step_route_jumps_like_a_target_route(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: Start
          function: {S}.increment
          routes:
            - condition: "count >= 1"
              next_step: End
            - default: Middle
        - name: Middle
          function: {S}.increment
        - name: End
          function: {S}.increment
        """)
    wf = await run_while_active(await start(b))
    assert wf.status == "COMPLETED" and wf.state.path == ["Start", "End"]


async def test_routes_and_loops_use_lengths_arithmetic_and_methods(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: Grow
          type: LOOP
          while_condition: "len(state.path) < 6 - count * 1"
          function: {S}.increment
          max_iterations: 10
        - name: Route
          type: DECISION
          routes:
            - condition: "len(path) % 2 == 0 and label.strip().lower().startswith('vip')"
              next_step: End
            - default: Middle
        - name: Middle
          function: {S}.increment
        - name: End
          function: {S}.increment
        """)
    wf = await run_while_active(await start(b, {"count": 2, "label": " VIP-7 "}))
    assert wf.status == "COMPLETED"
    # Grow ran while the path was shorter than 6 - count (count grows too): 2 rounds.
    assert wf.state.path == ["Grow", "Grow", "End"] and wf.state.count == 5


async def test_a_standard_step_with_routes_and_no_function_only_routes(tmp_path: Path) -> None:
    b = builder_for(tmp_path, f"""\
        - name: Start
          function: {S}.increment
        - name: Check
          type: STANDARD
          routes:
            - condition: "count > 0"
              next_step: End
        - name: Middle
          function: {S}.increment
        - name: End
          function: {S}.increment
        """)
    wf = await run_while_active(await start(b))
    assert wf.status == "COMPLETED" and wf.state.path == ["Start", "End"]


async def test_parallel_tasks_take_function_or_function_path(tmp_path: Path) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: P
          type: PARALLEL
          tasks:
            - {{name: one, function: {Y}.task_one}}
            - {{name: two, function_path: {Y}.task_two}}
        """)
    wf = await run_while_active(await start(b, {"a": 5}))
    assert wf.status == "COMPLETED"
    assert wf.state.model_dump() == {"a": 10, "b": 2, "tags": ["t2"], "items": [],
                                     "note": None, "new": "t2"}


async def test_cron_schedule_takes_schedule_as_its_cron_expression(tmp_path: Path) -> None:
    path = write_registry(tmp_path, {
        "Test": workflow_yaml(f"""\
            - name: Plan
              type: CRON_SCHEDULE
              target_workflow_type: Ticked
              schedule: "0 6 * * *"
              schedule_name: morning
            - name: After
              function: {S}.increment
            """),
        "Ticked": workflow_yaml(f"- name: Tick\n  function: {S}.increment\n", wf_type="Ticked"),
    })
    store = MemoryPersistenceProvider()
    wf = await WorkflowBuilder.from_registry(path).create_workflow(
        "Test", {}, persistence_provider=store, execution_provider=SyncExecutionProvider())
    await run_while_active(wf)
    assert wf.status == "COMPLETED"
    (schedule,) = await store.list_schedules()
    assert (schedule.name, schedule.workflow_type, schedule.cron_expression) == (
        "morning", "Ticked", "0 6 * * *")


SAGA_STEPS = f"""\
  - name: Reserve
    function: {S}.increment
    compensate_function: {S}.undo
  - name: Charge
    function: {S}.boom
"""


async def test_a_compensatable_step_runs_and_is_compensated_like_a_standard_one(
        tmp_path: Path) -> None:
    path = write_registry(tmp_path, {"Test": f"""\
workflow_type: Test
saga_mode: true
steps:
  - name: Reserve
    type: COMPENSATABLE
    function: {S}.increment
    compensate_function: {S}.undo
  - name: Note
    type: compensatable
    function: {S}.increment
  - name: Charge
    function: {S}.boom
"""})
    wf = await start(WorkflowBuilder.from_registry(path))
    with pytest.raises(WorkflowFailedException):
        await run_while_active(wf)
    assert wf.state.path == ["Reserve", "Note"]
    assert wf.status == "FAILED_ROLLED_BACK" and wf.state.undone == ["Reserve"]


@pytest.mark.parametrize("flags", ["saga_mode: true", "saga_enabled: true",
                                   "saga_mode: true\nsaga_enabled: false"])
async def test_saga_mode_turns_the_saga_on_like_saga_enabled(tmp_path: Path, flags: str) -> None:
    path = write_registry(tmp_path, {"Test": f"workflow_type: Test\n{flags}\nsteps:\n"
                                             f"{SAGA_STEPS}"})
    wf = await start(WorkflowBuilder.from_registry(path))
    with pytest.raises(WorkflowFailedException):
        await run_while_active(wf)
    assert wf.status == "FAILED_ROLLED_BACK" and wf.state.undone == ["Reserve"]


def test_saga_mode_must_be_true_or_false(tmp_path: Path) -> None:
    from ruvon_workers.definitions import load_registry
    from ruvon_workers.errors import DefinitionError

    path = write_registry(tmp_path, {"Test": f"workflow_type: Test\nsaga_mode: 'yes'\n"
                                             f"steps:\n{SAGA_STEPS}"})
    with pytest.raises(DefinitionError, match=r"field 'saga_mode': 'saga_mode' must be true or "
                                              r"false, not 'yes'"):
        load_registry(path)


@pytest.mark.parametrize(("label", "path"), [("go", ["A", "Extra", "B"]), ("skip", ["A", "B"]),
                                             ("", ["A", "B"])])
async def test_value_is_not_a_list_inserts_unless_the_value_is_one_of_them(
        tmp_path: Path, label: str, path: list[str]) -> None:
    b = builder_for(tmp_path, f"""\
        - name: A
          function: {S}.increment
          dynamic_injection:
            rules:
              - condition_key: state.label
                value_is_not: [skip, ""]
                action: INSERT_AFTER_CURRENT
                steps_to_insert:
                  - {{name: Extra, type: STANDARD, function: {S}.increment}}
        - name: B
          function: {S}.increment
        """)
    wf = await run_while_active(await start(b, {"label": label}))
    assert wf.status == "COMPLETED" and wf.state.path == path


async def test_iterate_over_wins_over_tasks_as_on_ruvon(tmp_path: Path) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: P
          type: PARALLEL
          tasks:
            - {{name: one, function: {Y}.task_one}}
          iterate_over: items
          task_function: {Y}.keyed
        """)
    wf = await run_while_active(await start(b, {"items": [4]}))
    assert wf.status == "COMPLETED"
    assert wf.state.a == 1 and wf.state.model_dump()["k4"] == 4


@pytest.mark.parametrize(("batch", "branches"), [("batch_size: 0", 3), ("", 3),
                                                 ("batch_size: 2", 2)])
async def test_batch_size_0_is_one_item_per_branch_and_batching_changes_no_result(
        tmp_path: Path, batch: str, branches: int) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: P
          type: PARALLEL
          iterate_over: state.items
          task_function: {Y}.keyed
          {batch}
        """)
    wf = await run_while_active(await start(b, {"items": [1, 2, 3]}))
    assert wf.status == "COMPLETED"
    assert {k: v for k, v in wf.state.model_dump().items() if k.startswith("k")} == {
        "k1": 1, "k2": 2, "k3": 3}
    (done,) = [h for h in await wf.history() if h.step == "P" and h.status == "COMPLETED"]
    assert done.detail["branches"] == branches


def two_tasks(options: str) -> str:
    """A PARALLEL step whose tasks return ``{a: 10, tags: [t1], new: t1}`` and ``{tags: [t2],
    new: t2}``, with ``options`` (YAML lines) added."""
    return textwrap.dedent(f"""\
        - name: P
          type: PARALLEL
          tasks:
            - {{name: one, function: {Y}.task_one}}
            - {{name: two, function: {Y}.task_two}}
        """) + textwrap.indent(textwrap.dedent(options), "  ")


#: The state after ``two_tasks`` from ``{a: 5, b: 7}`` (``tags`` starts as ``[s]``), by option.
MERGED = [
    ("merge_strategy: shallow", {"a": 10, "b": 7, "tags": ["t2"], "new": "t2"}),
    ("merge_strategy: DEEP", {"a": 10, "b": 7, "tags": ["t2"], "new": "t2"}),
    # REPLACE: the merged results are the state; b takes its default again.
    ("merge_strategy: replace", {"a": 10, "b": 2, "tags": ["t2"], "new": "t2"}),
    # APPEND: each branch's list extends the list, in declared order.
    ("merge_strategy: append", {"a": 10, "b": 7, "tags": ["s", "t1", "t2"], "new": "t2"}),
    # OVERWRITE_EXISTING: the later value wins, whatever the conflict behaviour says.
    ("merge_strategy: Overwrite_Existing\nmerge_conflict_behavior: raise_error",
     {"a": 10, "b": 7, "tags": ["t2"], "new": "t2"}),
    # PRESERVE_EXISTING: only keys the state lacks are set.
    ("merge_strategy: preserve_existing", {"a": 5, "b": 7, "tags": ["s"], "new": "t2"}),
    ("merge_strategy: PRESERVE_EXISTING\nmerge_conflict_behavior: prefer_existing",
     {"a": 5, "b": 7, "tags": ["s"], "new": "t1"}),
    # PREFER_OLD is PREFER_EXISTING: the state's non-null values and the earlier branch win.
    ("merge_conflict_behavior: PREFER_OLD", {"a": 5, "b": 7, "tags": ["s"], "new": "t1"}),
    ("merge_conflict_behavior: prefer_new", {"a": 10, "b": 7, "tags": ["t2"], "new": "t2"}),
]


@pytest.mark.parametrize(("options", "expected"), MERGED)
async def test_merge_strategies_and_conflict_behaviours_in_any_case(
        tmp_path: Path, options: str, expected: dict) -> None:
    wf = await run_while_active(await start(merge_builder(tmp_path, two_tasks(options)),
                                            {"a": 5, "b": 7}))
    assert wf.status == "COMPLETED"
    assert wf.state.model_dump() == {"items": [], "note": None, **expected}


async def test_raise_error_in_lower_case_fails_on_a_conflict(tmp_path: Path) -> None:
    b = merge_builder(tmp_path, two_tasks("merge_conflict_behavior: raise_error"))
    with pytest.raises(WorkflowFailedException, match="merge conflict on 'tags'"):
        await run_while_active(await start(b))


@pytest.mark.parametrize("batch", ["", "batch_size: 2", "batch_size: 3"])
async def test_append_counts_a_list_extended_in_place_as_the_items_added(
        tmp_path: Path, batch: str) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: P
          type: PARALLEL
          iterate_over: items
          task_function: {Y}.tag_in_place
          merge_strategy: append
          {batch}
        """)
    wf = await run_while_active(await start(b, {"items": [1, 2, 3]}))
    assert wf.status == "COMPLETED" and wf.state.tags == ["s", "i1", "i2", "i3"]


@pytest.mark.parametrize("strategy", ["append", "preserve_existing", "replace"])
async def test_a_merge_function_gets_the_changes_as_they_are_whatever_the_strategy(
        tmp_path: Path, strategy: str) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: P
          type: PARALLEL
          iterate_over: items
          task_function: {Y}.tag_in_place
          merge_strategy: {strategy}
          merge_function_path: {Y}.merge_seen
        """)
    wf = await run_while_active(await start(b, {"items": [1]}))
    assert wf.status == "COMPLETED" and wf.state.tags == ["s"]
    assert wf.state.note == repr([{"tags": ["s", "i1"]}])


async def test_a_one_argument_merge_function_gets_the_results_alone(tmp_path: Path) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: P
          type: PARALLEL
          tasks:
            - {{name: one, function: {Y}.task_one}}
            - {{name: two, function: {Y}.task_two}}
          merge_function_path: {Y}.merge_results_only
        """)
    wf = await run_while_active(await start(b))
    assert wf.status == "COMPLETED" and wf.state.note == "t1+t2"


async def test_replace_with_no_branches_leaves_every_field_at_its_default(
        tmp_path: Path) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: P
          type: PARALLEL
          iterate_over: items
          task_function: {Y}.keyed
          merge_strategy: replace
        """)
    wf = await run_while_active(await start(b, {"a": 5, "note": "x"}))
    assert wf.status == "COMPLETED"
    assert wf.state.model_dump() == {"a": 1, "b": 2, "tags": ["s"], "items": [], "note": None}


async def test_loop_body_entries_may_be_whole_steps_and_run_in_order(tmp_path: Path) -> None:
    b = merge_builder(tmp_path, f"""\
        - name: Process_Items
          type: LOOP
          mode: ITERATE
          iterate_over: state.items
          max_iterations: 100
          loop_body:
            - name: Note
              type: STANDARD
              function: {Y}.note_loop_item
            - name: Tag
              type: STANDARD
              function: {Y}.tag_loop_item
        """)
    wf = await run_while_active(await start(b, {"items": [1, 2]}))
    assert wf.status == "COMPLETED"
    assert wf.state.note == "12" and wf.state.tags == ["s", "i1", "i2"]


@pytest.mark.parametrize(("options", "expected"), [
    row for row in MERGED if row[0].split("\n")[0].endswith(("replace", "append",
                                                               "Overwrite_Existing",
                                                               "preserve_existing"))])
async def test_the_fleet_merges_the_same_way(tmp_path: Path, options: str,
                                             expected: dict) -> None:
    """Each branch its own message, handled by the coordinator on the memory store."""
    from ruvon_workers.definitions import load_registry
    from ruvon_workers.fleet.coordinator import Coordinator
    from ruvon_workers.fleet.settings import FleetSettings

    registry = load_registry(write_registry(tmp_path, {"Test": workflow_yaml(two_tasks(options))},
                                            state_model=MERGE_STATE))
    outbox = Outbox()
    settings = FleetSettings("q", lease_seconds=300, sweep_interval=10, max_countdown=60)
    coordinator = Coordinator(registry, MemoryPersistenceProvider(), outbox,  # type: ignore[arg-type]
                              settings)
    record, _ = await coordinator.start("Test", {"a": 5, "b": 7})
    branches = 0
    while outbox.sent:
        batch, outbox.sent = outbox.sent, []
        for message in batch:
            branches += message[3] is not None
            await coordinator.handle_step(*message)
    done = await coordinator.load(record.id)
    assert done.status == "COMPLETED" and branches == 2
    assert done.state == {"items": [], "note": None, **expected}


async def test_parameters_fill_their_placeholders_when_the_file_loads(tmp_path: Path) -> None:
    path = write_registry(tmp_path, {"Test": f"""\
workflow_type: Test
automate_start: true
parameters:
  module: {S.rsplit(".", 1)[0]}
  rounds: 2
  vip: {{prefix: VIP}}
steps:
  - name: Count
    type: LOOP
    while_condition: "count < {{{{ parameters.rounds }}}}"
    max_iterations: "{{{{ parameters.rounds }}}}"
    function: "{{{{ parameters.module }}}}.steps.increment"
  - name: Route
    type: DECISION
    routes:
      - condition: "label.startswith('{{{{ parameters.vip.prefix }}}}')"
        next_step: End
      - default: Other
  - name: Other
    function: {S}.increment
  - name: End
    function: {S}.increment
"""})
    builder = WorkflowBuilder.from_registry(path)
    step = builder.registry.get("Test").step("Count")
    assert (step.while_condition, step.max_iterations, step.function) == (
        "count < 2", 2, f"{S}.increment")
    wf = await start(builder, {"label": "VIP-1"})
    # automate_start is read and ignored: a new workflow waits at its first step.
    assert wf.status == "ACTIVE" and wf.current_step_name == "Count" and wf.state.count == 0
    await run_while_active(wf)
    assert wf.status == "COMPLETED" and wf.state.path == ["Count", "Count", "End"]


def test_a_placeholder_of_an_unknown_parameter_is_refused(tmp_path: Path) -> None:
    from ruvon_workers.definitions import load_registry
    from ruvon_workers.errors import DefinitionError

    path = write_registry(tmp_path, {"Test": f"""\
workflow_type: Test
parameters: {{rounds: 2}}
steps:
  - name: A
    function: {S}.increment
    description: "{{{{ parameters.round }}}} and {{{{ parameters.rounds ** 2 }}}}"
"""})
    with pytest.raises(DefinitionError) as info:
        load_registry(path)
    first, second = (str(issue) for issue in info.value.issues)
    assert "Test.yaml:4" in first and "field 'parameters'" in first
    assert "'{{ parameters.round }}' names no value of 'parameters'" in first
    assert "'{{ parameters.rounds ** 2 }}' is refused: operator '**'" in second
