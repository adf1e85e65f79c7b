"""The dashboard's drawing of a definition: which boxes and edges, where, and what a run
adds; every definition shipped or used by the tests drawn without overlaps."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ruvon_workers.definitions import load_registry
from ruvon_workers.definitions.models import WorkflowDefinition
from ruvon_workers.server.graph import Graph, RunMarks, layout
from ruvon_workers.server.graph_svg import svg

from ..helpers import FLEET_REGISTRY, workflow_yaml, write_registry

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"

STEPS = """\
- name: Begin
  function: tests.fixtures.type_steps.start_child
- name: Fan
  type: PARALLEL
  tasks:
    - {name: credit, function_path: tests.fixtures.type_steps.check_credit}
    - {name: fraud, function_path: tests.fixtures.type_steps.check_fraud}
- name: Each
  type: LOOP
  mode: ITERATE
  iterate_over: state.path
  item_var_name: item
  max_iterations: 5
  loop_body:
    - {name: Visit, function: tests.fixtures.type_steps.tick}
- name: Check
  type: DECISION
  routes:
    - {condition: "state.value > 3", target: Begin}
    - {condition: "state.value == 0", target: Done}
    - {default: Middle}
- name: Middle
  function: tests.fixtures.type_steps.tick
- name: Done
  function: tests.fixtures.type_steps.tick
"""


@pytest.fixture
def defn(tmp_path: Path) -> WorkflowDefinition:
    path = write_registry(tmp_path, {"Test": workflow_yaml(STEPS)},
                          state_model="tests.fixtures.models.FamilyState")
    return load_registry(path).get("Test")


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def edges(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(g.get("data-from", ""), g.get("data-to", "")): g
            for g in root.iter(f"{SVG}g") if "edge" in (g.get("class") or "").split()}


def test_steps_routes_branches_loop_and_sub_workflow(defn: WorkflowDefinition) -> None:
    root = parse(svg(defn))
    assert root.get("role") == "img" and "Test" in (root.get("aria-label") or "")
    assert (root.get("viewBox") or "").count(" ") == 3
    nodes = {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}
    for name in ("Begin", "Fan", "Each", "Check", "Middle", "Done"):
        node = nodes[f"step-{name}"]
        title = node.find(f"{SVG}title")
        assert title is not None and (title.text or "").startswith(name)
    # The default flow, top to bottom in declared order.
    graph = layout(defn)
    ys = [graph.box(f"step-{n}").y for n in ("Begin", "Fan", "Each", "Check", "Middle", "Done")]
    assert ys == sorted(ys)
    found = edges(root)
    assert ("start", "step-Begin") in found and ("step-Done", "end") in found
    assert ("step-Begin", "step-Fan") in found and ("step-Middle", "step-Done") in found
    # The DECISION: a route back, one forward (each labelled), the default; no fall-through
    # from Check to Middle other than its default.
    back = found[("step-Check", "step-Begin")]
    assert "route" in (back.get("class") or "")
    assert "state.value > 3" in "".join(back.itertext())
    assert "state.value == 0" in "".join(found[("step-Check", "step-Done")].itertext())
    assert "otherwise" in "".join(found[("step-Check", "step-Middle")].itertext())
    # PARALLEL: a box per branch side by side, fanning out and joining.
    b0, b1 = graph.box("step-Fan-branch-0"), graph.box("step-Fan-branch-1")
    assert b0.text == "credit" and b1.text == "fraud" and b0.y == b1.y and b0.right < b1.x
    assert ("step-Fan", "step-Fan-branch-0") in found
    assert ("step-Fan-branch-1", "step-Fan-join") in found
    assert ("step-Fan-join", "step-Each") not in found  # the edge is named by its step
    assert ("step-Fan", "step-Each") in found
    # LOOP: its body under it and an edge back.
    assert graph.box("step-Each-body-0").text == "Visit"
    assert "back" in (found[("step-Each-body-0", "step-Each")].get("class") or "")
    # A sub-workflow (read from the step's function): its type, linked to its definition.
    begin = nodes["step-Begin"]
    assert "sub-workflow Child" in "".join(begin.itertext())
    link = begin.find(f"{SVG}a")
    assert link is not None and link.get("href") == "/ui/definitions#Child"


def test_a_run_highlights_its_step_and_links_its_child(defn: WorkflowDefinition) -> None:
    marks = RunMarks(current="Check", reached={"Begin": "COMPLETED", "Fan": "COMPLETED"},
                     children={"Begin": ("0123-child", "Child")})
    root = parse(svg(defn, marks))
    nodes = {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}
    assert "current" in (nodes["step-Check"].get("class") or "").split()
    assert "current" not in (nodes["step-Middle"].get("class") or "").split()
    assert "r-completed" in (nodes["step-Fan"].get("class") or "").split()
    assert "current step Check" in (root.get("aria-label") or "")
    link = nodes["step-Begin"].find(f"{SVG}a")
    assert link is not None and link.get("href") == "/ui/workflows/0123-child"
    failed = parse(svg(defn, RunMarks(failed="Middle", reached={"Middle": "FAILED"})))
    node = next(g for g in failed.iter(f"{SVG}g") if g.get("id") == "step-Middle")
    assert "failed" in (node.get("class") or "").split()
    assert "✕" in "".join(node.itertext()) and "failed" in "".join(node.itertext())


def test_prefix_keeps_ids_apart(defn: WorkflowDefinition) -> None:
    root = parse(svg(defn, prefix="Test-"))
    ids = [g.get("id") for g in root.iter(f"{SVG}g") if g.get("id")]
    assert "Test-step-Begin" in ids and len(ids) == len(set(ids))


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]
             ) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _check(graph: Graph) -> None:
    boxes = [(b.x, b.y, b.right, b.bottom) for b in graph.boxes]
    labels = [e.label.box() for e in graph.edges if e.label]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not _overlap(a, b), (graph.workflow_type, a, b)
    for i, a in enumerate(labels):
        assert not any(_overlap(a, b) for b in boxes), (graph.workflow_type, a)
        assert not any(_overlap(a, b) for b in labels[i + 1:]), (graph.workflow_type, a)
    for e in graph.edges:  # every edge joins two drawn boxes
        ids = {b.id for b in graph.boxes}
        assert e.source in ids and e.target in ids, (graph.workflow_type, e)


@pytest.mark.parametrize("registry", [
    ROOT / "config" / "workflow_registry.yaml", FLEET_REGISTRY,
    ROOT / "tests" / "fixtures" / "sealed" / "workflow_registry.yaml",
    ROOT / "tests" / "fixtures" / "ruvon_front" / "workflow_registry.yaml",
    ROOT / "ruvon_workers" / "bench" / "workflow_registry.yaml"])
def test_every_definition_draws_without_overlaps(registry: Path) -> None:
    for d in load_registry(registry):
        _check(layout(d))
        parse(svg(d))  # well-formed


def test_the_routed_test_definition_draws_without_overlaps(defn: WorkflowDefinition) -> None:
    _check(layout(defn))
