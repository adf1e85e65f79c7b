"""Every bad definition gets a message naming the file, the step and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ruvon_workers.definitions import load_registry
from ruvon_workers.errors import DefinitionError

from ..helpers import S, workflow_yaml, write_registry

ROOT = Path(__file__).resolve().parents[2]


def problems(tmp_path: Path, steps: str, **kw: str) -> list[str]:
    path = write_registry(tmp_path, {"Test": workflow_yaml(steps)}, **kw)
    with pytest.raises(DefinitionError) as info:
        load_registry(path)
    return [str(issue) for issue in info.value.issues]


def test_example_registry_loads() -> None:
    registry = load_registry(ROOT / "config" / "workflow_registry.yaml")
    defn = registry.get("OrderProcessing")
    assert [s.name for s in defn.steps][:2] == ["Validate_Order", "Check_Amount"]
    assert defn.saga_enabled


def test_unknown_step_type(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, f"- name: A\n  type: TELEPORT\n  function: {S}.increment\n")
    assert "Test.yaml:" in msg and "step 'A'" in msg and "field 'type'" in msg
    assert "unknown step type 'TELEPORT'" in msg and "STANDARD" in msg


def test_missing_function(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, "- name: A\n  type: STANDARD\n")
    assert "step 'A'" in msg and "field 'function'" in msg and "needs 'function'" in msg


def test_function_that_does_not_import(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, "- name: A\n  function: tests.fixtures.nowhere.fn\n")
    assert "step 'A'" in msg and "field 'function'" in msg
    assert "'tests.fixtures.nowhere.fn' does not import" in msg


def test_missing_attribute_and_not_callable(tmp_path: Path) -> None:
    msgs = problems(tmp_path, f"- name: A\n  function: {S}.missing_fn\n"
                              f"- name: B\n  function: {S}.NOT_CALLABLE\n")
    assert any("has no attribute 'missing_fn'" in m and "step 'A'" in m for m in msgs)
    assert any("is not callable" in m and "step 'B'" in m for m in msgs)


def test_route_target_and_dependency_that_name_no_step(tmp_path: Path) -> None:
    msgs = problems(tmp_path, f"""\
        - name: A
          function: {S}.increment
          dependencies: [Ghost]
        - name: B
          type: DECISION
          routes:
            - condition: "count > 1"
              target: Nowhere
            - default: A
        """)
    assert any("route target 'Nowhere' names no step" in m and "step 'B'" in m for m in msgs)
    assert any("dependency 'Ghost' names no step" in m and "step 'A'" in m for m in msgs)


def test_duplicate_step_names(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, f"- name: A\n  function: {S}.increment\n"
                                f"- name: A\n  function: {S}.increment\n")
    assert "step 'A'" in msg and "duplicate step name" in msg and "Test.yaml:7," in msg


def test_invalid_state_model(tmp_path: Path) -> None:
    msgs = problems(tmp_path, f"- name: A\n  function: {S}.increment\n",
                    state_model="tests.fixtures.models.NotAModel")
    assert any("is not a pydantic BaseModel subclass" in m for m in msgs)
    msgs = problems(tmp_path, f"- name: A\n  function: {S}.increment\n",
                    state_model="tests.fixtures.models.Missing")
    assert any("field 'initial_state_model_path'" in m and "does not import" in m for m in msgs)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_registry(tmp_path, {"Test": "workflow_type: Test\nsteps:\n  - name: A\n"
                                              "    function: [unclosed\n"})
    with pytest.raises(DefinitionError) as info:
        load_registry(path)
    (issue,) = info.value.issues
    assert issue.file.endswith("Test.yaml") and issue.line is not None
    assert "malformed YAML" in str(issue)


def test_condition_outside_the_grammar_is_refused(tmp_path: Path) -> None:
    msgs = problems(tmp_path, """\
        - name: B
          type: DECISION
          routes:
            - condition: "__import__('os').system('true')"
              target: B
            - condition: "state.__class__ == 1"
              target: B
        """)
    assert len(msgs) == 2
    assert all("step 'B'" in m and "is refused" in m for m in msgs)
    assert "field 'routes[0].condition'" in msgs[0]


def test_invalid_field_values_name_the_field(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, f"- name: A\n  function: {S}.increment\n  retry_policy:\n"
                                "    max_attempts: 0\n")
    assert "step 'A'" in msg and "retry_policy.max_attempts" in msg


def test_registry_problems(tmp_path: Path) -> None:
    path = tmp_path / "workflow_registry.yaml"
    path.write_text("workflows:\n  - type: A\n  - config_file: x.yaml\n"
                    "  - type: B\n    config_file: missing.yaml\n"
                    "    initial_state_model: tests.fixtures.models.CounterState\n")
    with pytest.raises(DefinitionError) as info:
        load_registry(path)
    text = str(info.value)
    assert "workflow 'A' has no 'config_file'" in text
    assert "workflow entry has no 'type'" in text
    assert "missing.yaml: cannot read file" in text


def test_validate_cli_prints_every_problem(tmp_path: Path) -> None:
    path = write_registry(tmp_path, {"Test": workflow_yaml(
        "- name: A\n  type: TELEPORT\n- name: B\n  function: nowhere.fn\n"
        "- name: B\n  function: nowhere.fn\n")})
    proc = subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "validate", str(path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 4
    assert "3 problem(s)" in proc.stderr
    assert "TELEPORT" in proc.stderr and "nowhere.fn" in proc.stderr
    assert "duplicate step name" in proc.stderr


def test_validate_cli_ok() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "validate",
                           "config/workflow_registry.yaml", "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert '"valid":true' in proc.stdout and "Charge_Payment" in proc.stdout


def test_routes_take_next_step_or_target_and_both_are_checked(tmp_path: Path) -> None:
    msgs = problems(tmp_path, f"""\
        - name: A
          function: {S}.increment
          routes:
            - condition: "count > 1"
              next_step: Nowhere
            - condition: "count > 2"
              target: Elsewhere
            - default: A
        """)
    assert len(msgs) == 2 and all("step 'A'" in m for m in msgs)
    assert "field 'routes[0]'" in msgs[0] and "route target 'Nowhere' names no step" in msgs[0]
    assert "field 'routes[1]'" in msgs[1] and "route target 'Elsewhere' names no step" in msgs[1]


def test_a_route_with_two_targets_or_none_is_refused(tmp_path: Path) -> None:
    msgs = problems(tmp_path, f"""\
        - name: A
          function: {S}.increment
          routes:
            - condition: "count > 3"
              next_step: A
              target: B
            - condition: "count > 4"
        - name: B
          function: {S}.increment
        """)
    assert len(msgs) == 2
    assert "field 'routes[0]'" in msgs[0] and "two targets ('next_step: A', 'target: B')" in msgs[0]
    assert "field 'routes[1]'" in msgs[1] and "needs 'condition' and 'next_step'" in msgs[1]


def test_refused_expressions_name_the_step_the_field_and_the_expression(
        tmp_path: Path) -> None:
    msgs = problems(tmp_path, f"""\
        - name: Route
          function: {S}.increment
          routes:
            - condition: "len(path) ** 2 > 4"
              next_step: Route
        - name: Loop
          type: LOOP
          while_condition: "label.format(count)"
          function: {S}.increment
        - name: Spawn
          type: FIRE_AND_FORGET
          target_workflow_type: Test
          initial_data_template:
            rule: "{{{{ '-' * 1000000000 }}}}"
        """)
    assert len(msgs) == 3
    assert "step 'Route'" in msgs[0] and "field 'routes[0].condition'" in msgs[0]
    assert "condition 'len(path) ** 2 > 4' is refused: operator '**' is not allowed" in msgs[0]
    assert "step 'Loop'" in msgs[1] and "field 'while_condition'" in msgs[1]
    assert "expression 'label.format(count)' is refused: method 'format'" in msgs[1]
    assert "step 'Spawn'" in msgs[2] and "field 'initial_data_template.rule'" in msgs[2]
    assert "a repetition of 1000000000 items is too long" in msgs[2]


def test_environment_variables_fill_the_file_when_it_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RW_TEST_SERVICE", "http://127.0.0.1:9000")
    monkeypatch.delenv("RW_TEST_UNSET", raising=False)
    path = write_registry(tmp_path, {"Test": workflow_yaml(f"""\
        - name: Fetch
          type: HTTP
          http_config:
            url: "${{RW_TEST_SERVICE}}/score"
            headers:
              X-Region: "${{RW_TEST_UNSET:-eu-west}}"
              X-Left: "${{RW_TEST_UNSET}}"
          output_key: label
        - name: Done
          function: {S}.increment
        """)})
    config = load_registry(path).get("Test").step("Fetch").http_config or {}
    assert config["url"] == "http://127.0.0.1:9000/score"
    assert config["headers"] == {"X-Region": "eu-west", "X-Left": "${RW_TEST_UNSET}"}
