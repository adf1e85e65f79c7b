"""A workflow definition laid out as a graph: boxes and edges with coordinates.

The default flow runs top to bottom in declared order. Routes and jumps that skip steps
are drawn on the right, each in a lane of its own; a PARALLEL step fans out into its
branches and joins them; a LOOP step's body sits under it with its back edge on the left;
steps a ``dynamic_injection`` rule inserts form a detour on the left. ``graph_svg`` draws
the result. Text widths are estimated (no font metrics on the server), generously.
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..definitions.models import StepDefinition, StepType, WorkflowDefinition

NAME_SIZE = 13
SUB_SIZE = 11
LABEL_SIZE = 11
NODE_H = 44
GAP = 36
PORT = 16
LANE = 14
BRANCH_W, BRANCH_H, BRANCH_GAP, FAN = 116, 30, 10, 26
BODY_H = 30
INJ_W, INJ_H = 150, 40
MAX_BRANCHES = 5
MAX_LABEL = 30


def text_width(text: str, size: float, bold: bool = False) -> float:
    """A generous estimate of ``text``'s width in a sans-serif font of ``size`` px."""
    return len(text) * size * (0.64 if bold else 0.6)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class RunMarks:
    """What a run adds to its definition's graph."""

    current: str | None = None
    #: Step name -> the status of its last history row.
    reached: dict[str, str] = field(default_factory=dict)
    failed: str | None = None
    #: Step name -> (id, workflow type) of the run it started.
    children: dict[str, tuple[str, str | None]] = field(default_factory=dict)


@dataclass
class Box:
    id: str
    kind: str  # start, end, step, branch, body, join, injected
    x: float
    y: float
    w: float
    h: float
    text: str = ""
    sub: str = ""
    title: str = ""
    step: str | None = None
    classes: list[str] = field(default_factory=list)
    href: str | None = None
    stacked: bool = False

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h


@dataclass
class Label:
    text: str
    x: float
    y: float  # baseline
    anchor: str = "start"
    title: str = ""

    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the label, estimated."""
        w = text_width(self.text, LABEL_SIZE)
        left = {"start": self.x, "middle": self.x - w / 2, "end": self.x - w}[self.anchor]
        return left, self.y - LABEL_SIZE, left + w, self.y + 3


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # next, route, jump, branch, join, body, back, inject
    path: str = ""
    arrow: tuple[float, float, float, float] | None = None  # tip x, y, direction x, y
    label: Label | None = None
    #: The rightmost x the path reaches (side edges run beyond every box).
    reach: float | None = None


@dataclass
class Graph:
    workflow_type: str
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def box(self, box_id: str) -> Box:
        return next(b for b in self.boxes if b.id == box_id)

    def bounds(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of everything drawn."""
        xs: list[float] = []
        ys: list[float] = []
        for b in self.boxes:
            xs += [b.x, b.right + (4 if b.stacked else 0)]
            ys += [b.y, b.bottom + (4 if b.stacked else 0)]
        for e in self.edges:
            if e.reach is not None:
                xs.append(e.reach + 2)
            if e.label:
                left, top, right, bottom = e.label.box()
                xs += [left, right]
                ys += [top, bottom]
        return min(xs), min(ys), max(xs), max(ys)


# -- what a step's function may do: read from its source, once ----------------------------

@functools.lru_cache(maxsize=512)
def _directives(fn: Callable[..., Any]) -> tuple[tuple[str, str], ...]:
    """(directive, literal argument) pairs for the jumps and sub-workflows ``fn`` raises
    with a literal target, e.g. ``("StartSubWorkflowDirective", "Shipment")``."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return ()
    wanted = {"WorkflowJumpDirective": "target_step_name",
              "StartSubWorkflowDirective": "workflow_type"}
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name not in wanted:
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == wanted[name])]
        if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            found.append((name, args[0].value))
    return tuple(dict.fromkeys(found))


def directives(d: WorkflowDefinition, s: StepDefinition) -> list[tuple[str, str]]:
    paths = [s.function, *(entry.get("function") for entry in s.loop_body)]
    out: list[tuple[str, str]] = []
    for path in paths:
        fn = d.function(path)
        if fn is not None:
            try:
                out += _directives(fn)
            except TypeError:  # an unhashable callable
                pass
    return list(dict.fromkeys(out))


def started_type(d: WorkflowDefinition, s: StepDefinition) -> tuple[str, str] | None:
    """("sub-workflow" or "starts", workflow type) when the step starts another run."""
    if s.target_workflow_type:
        return "starts", s.target_workflow_type
    for name, arg in directives(d, s):
        if name == "StartSubWorkflowDirective":
            return "sub-workflow", arg
    return None


# -- the flow between steps -----------------------------------------------------------------

END = "end"


def successors(d: WorkflowDefinition, s: StepDefinition) -> list[tuple[str, str, str]]:
    """(target, kind, label) of each way out of step ``s``; ``END`` ends the run.
    Routes to the same target share one edge, their labels joined."""
    out: dict[tuple[str, str], list[str]] = {}
    for r in s.routes:
        target = r.target or r.next_step or r.default
        if target:
            out.setdefault((target, "route"), []).append(r.condition or "otherwise")
    if not any(r.condition is None for r in s.routes):
        after = d.step_after(s.name) if d.index_of(s.name) >= 0 else None
        out.setdefault((after or END, "next"), []).append("otherwise" if s.routes else "")
    for name, arg in directives(d, s):
        if name == "WorkflowJumpDirective" and d.has_step(arg) and arg != s.name:
            out.setdefault((arg, "jump"), []).append("jump")
    return [(target, kind, " / ".join(x for x in labels if x))
            for (target, kind), labels in out.items()]


def _type_line(d: WorkflowDefinition, s: StepDefinition) -> str:
    kind = str(s.type)
    if s.type is StepType.PARALLEL:
        n = len(s.tasks)
        return f"{kind} · " + (f"{n} branches" if n else f"per item of {s.iterate_over}")
    if s.type is StepType.LOOP:
        if s.while_condition:
            return f"{kind} · while {s.while_condition}"
        return f"{kind} · each {s.item_var_name or 'item'} in {s.iterate_over}"
    started = started_type(d, s)
    if started:
        return f"{kind} · {started[0]} {started[1]}"
    return kind


def _short(path: str | None) -> str:
    return (path or "").rsplit(".", 1)[-1]


class _Layout:
    def __init__(self, d: WorkflowDefinition, marks: RunMarks | None, prefix: str):
        self.d, self.marks, self.prefix = d, marks, prefix
        self.g = Graph(d.workflow_type)
        self.steps = d.steps
        self.succ = {s.name: successors(d, s) for s in d.all_steps}
        self.order = {s.name: i for i, s in enumerate(self.steps)}
        self.lines = {s.name: clip(_type_line(d, s), 44) for s in d.all_steps}
        widest = max([text_width(s.name, NAME_SIZE, True) + 40 for s in self.steps]
                     + [text_width(t, SUB_SIZE) + 20 for t in self.lines.values()] + [200])
        self.w = min(widest, 300.0)
        self.side: list[tuple[str, str, str, str]] = []  # source, target, kind, label
        self.ports: dict[str, int] = {}
        self.anchors: dict[str, Box] = {}
        self.exits: dict[str, tuple[float, float]] = {}

    def node_id(self, name: str) -> str:
        return f"{self.prefix}step-{'_'.join(name.split())}"

    # Which edges go down the middle and which on the side.
    def plan(self) -> None:
        for s in self.steps:
            i = self.order[s.name]
            following = self.steps[i + 1].name if i + 1 < len(self.steps) else END
            for target, kind, label in self.succ[s.name]:
                if target == following and kind != "jump":
                    continue
                if target == END or target not in self.order:
                    continue  # an END that is not last cannot happen; injected: the detour
                self.side.append((s.name, target, kind, label))
                self.ports[s.name] = self.ports.get(s.name, 0) + 1
                self.ports[target] = self.ports.get(target, 0) + 1

    def add(self, box: Box) -> Box:
        self.g.boxes.append(box)
        return box

    def step_box(self, s: StepDefinition, x: float, y: float, w: float, h: float,
                 kind: str = "step") -> Box:
        started = started_type(self.d, s)
        box = Box(self.node_id(s.name), kind, x, y, w, h, clip(s.name, int(w / 8.5)),
                  self.lines[s.name], step=s.name, classes=["node"])
        title = [f"{s.name} ({s.type})"]
        if s.description:
            title.append(s.description.strip())
        if started:
            box.href = f"/ui/definitions#{started[1]}"
        m = self.marks
        if m is not None:
            status = m.reached.get(s.name)
            if status:
                box.classes.append(f"r-{status.lower()}")
                title.append(f"last: {status}")
            if s.name == m.current:
                box.classes.append("current")
                title.append("current step")
            if s.name == m.failed:
                box.classes.append("failed")
            child = m.children.get(s.name)
            if child:
                box.href = f"/ui/workflows/{child[0]}"
                if child[1] and started:
                    box.sub = clip(f"{s.type} · {started[0]} {child[1]}", 44)
                title.append(f"started {child[1] or 'run'} {child[0]}")
        if kind == "injected":
            box.classes.append("injected")
        box.title = " — ".join(title)
        return self.add(box)

    def run(self) -> Graph:
        self.plan()
        w = self.w
        x0 = -w / 2
        start = self.add(Box(f"{self.prefix}start", "start", -30, 0, 60, 22, "start",
                             classes=["terminal"]))
        y = start.bottom + GAP * 0.7
        prev: tuple[float, float] | None = (0, start.bottom)
        prev_name = "start"
        detours: list[tuple[str, list[Box]]] = []
        for s in self.steps:
            h = max(NODE_H, PORT * (self.ports.get(s.name, 0) + 1))
            box = self.step_box(s, x0, y, w, h)
            if prev is not None:
                self.straight(prev_name, s.name, prev, box)
            y = box.bottom
            exit_point = (0.0, y)
            if s.type is StepType.PARALLEL:
                exit_point = self.fan_out(s, box)
            elif s.type is StepType.LOOP:
                exit_point = self.loop(s, box)
            y = exit_point[1]
            self.anchors[s.name] = box
            self.exits[s.name] = exit_point
            injected = self.injected_after(s)
            if injected:
                boxes = []
                iw = max([INJ_W, *(text_width(n, NAME_SIZE, True) + 24 for n in injected)])
                iy = y + GAP * 0.8
                for name in injected:
                    boxes.append(self.step_box(self.d.step(name), x0 - 26 - iw, iy,
                                               iw, INJ_H, "injected"))
                    iy += INJ_H + 22
                detours.append((s.name, boxes))
                y = iy
            y += GAP
            following = [t for t, k, _ in self.succ[s.name] if k != "jump"]
            i = self.order[s.name]
            nxt = self.steps[i + 1].name if i + 1 < len(self.steps) else END
            prev = exit_point if nxt in following else None
            prev_name = s.name
        end = self.add(Box(f"{self.prefix}end", "end", -30, y, 60, 22, "end",
                           classes=["terminal"]))
        if prev is not None:
            self.straight(prev_name, END, prev, end)
        for source, boxes in detours:
            self.detour(source, boxes, end)
        self.side_edges()
        return self.g

    def target_box(self, name: str, end: Box) -> Box:
        return end if name == END else self.anchors[name]

    def straight(self, source: str, target: str, start: tuple[float, float], box: Box) -> None:
        sx, sy = start
        ty = box.y
        label = next((lab for t, k, lab in self.succ.get(source, ()) if t == target and lab),
                     None)
        edge = Edge(self.node_id(source) if source != "start" else f"{self.prefix}start",
                    box.id, "next", f"M{sx:g},{sy:g} V{ty - 1:g}", (sx, ty, 0, 1))
        if label:
            edge.kind = "route"
            edge.label = Label(clip(label, MAX_LABEL), sx + 7, sy + 15, title=label)
        self.g.edges.append(edge)

    def fan_out(self, s: StepDefinition, box: Box) -> tuple[float, float]:
        names = [t.name for t in s.tasks] or [_short(s.task_function) or "each item"]
        shown = names[:MAX_BRANCHES]
        if len(names) > MAX_BRANCHES:
            shown[-1] = f"+{len(names) - MAX_BRANCHES + 1} more"
        total = len(shown) * BRANCH_W + (len(shown) - 1) * BRANCH_GAP
        y = box.bottom + FAN
        join_y = y + BRANCH_H + FAN
        join = self.add(Box(f"{box.id}-join", "join", -4, join_y - 4, 8, 8,
                            classes=["join"]))
        for i, name in enumerate(shown):
            bx = -total / 2 + i * (BRANCH_W + BRANCH_GAP)
            branch = self.add(Box(f"{box.id}-branch-{i}", "branch", bx, y, BRANCH_W, BRANCH_H,
                                  clip(name, 15), title=f"{s.name}: branch {name}",
                                  step=s.name, classes=["sub"], stacked=not s.tasks))
            if not s.tasks:
                branch.title = f"{s.name}: one branch per item of {s.iterate_over}"
            self.curve(box.id, branch.id, "branch", (0, box.bottom), (branch.cx, branch.y))
            self.curve(branch.id, join.id, "join", (branch.cx, branch.bottom), (0, join.y),
                       arrow=False)
        return 0.0, join.bottom

    def loop(self, s: StepDefinition, box: Box) -> tuple[float, float]:
        names = [e.get("name") or _short(e.get("function")) for e in s.loop_body]
        names = names or [_short(s.function) or "body"]
        bw = self.w - 40
        y = box.bottom
        prev = (0.0, box.bottom)
        prev_id = box.id
        body: list[Box] = []
        for i, name in enumerate(names):
            y += 18
            b = self.add(Box(f"{box.id}-body-{i}", "body", -bw / 2, y, bw, BODY_H,
                             clip(str(name), int(bw / 7.5)), title=f"{s.name}: body {name}",
                             step=s.name, classes=["sub"]))
            self.line(prev_id, b.id, "body", prev, (0, b.y))
            prev, prev_id = (0.0, b.bottom), b.id
            body.append(b)
            y = b.bottom
        last = body[-1]
        lx = box.x - 16
        sy, ty = last.y + last.h / 2, box.y + box.h / 2
        path = (f"M{last.x:g},{sy:g} H{lx + 8:g} Q{lx:g},{sy:g} {lx:g},{sy - 8:g} "
                f"V{ty + 8:g} Q{lx:g},{ty:g} {lx + 8:g},{ty:g} H{box.x - 1:g}")
        text = "next item" if s.iterate_over else "repeat"
        self.g.edges.append(Edge(last.id, box.id, "back", path, (box.x, ty, 1, 0),
                                 Label(text, lx - 4, (sy + ty) / 2 + 4, "end")))
        return 0.0, last.bottom

    def injected_after(self, s: StepDefinition) -> list[str]:
        rules = self.d.injection_rules.get(s.name, ())
        return list(dict.fromkeys(n for r in rules for n in r.steps_to_insert
                                  if n in self.d.injected_steps))

    def detour(self, source: str, boxes: list[Box], end: Box) -> None:
        sx, sy = self.exits[source]
        first = boxes[0]
        rules = self.d.injection_rules.get(source, ())
        when = " or ".join(f"{r.condition_key} = {r.value_match}" if "value_match"
                           in r.model_fields_set else f"{r.condition_key} not "
                           f"{r.value_is_not}" for r in rules)
        for b in boxes:
            b.sub = clip(f"inserted if {when}", 24)
            b.title += f" — inserted after {source} when {when}"
        self.curve(self.node_id(source), first.id, "inject", (sx, sy), (first.cx, first.y))
        for a, b in itertools.pairwise(boxes):
            self.line(a.id, b.id, "inject", (a.cx, a.bottom), (b.cx, b.y))
        i = self.order[source]
        nxt = self.steps[i + 1].name if i + 1 < len(self.steps) else END
        target = self.target_box(nxt, end)
        last = boxes[-1]
        tx = target.x + min(24.0, target.w / 4)
        self.curve(last.id, target.id, "inject", (last.cx, last.bottom), (tx, target.y))

    def line(self, a: str, b: str, kind: str, p: tuple[float, float],
             q: tuple[float, float]) -> None:
        self.g.edges.append(Edge(a, b, kind, f"M{p[0]:g},{p[1]:g} L{q[0]:g},{q[1] - 1:g}",
                                 (q[0], q[1], 0, 1)))

    def curve(self, a: str, b: str, kind: str, p: tuple[float, float],
              q: tuple[float, float], arrow: bool = True) -> None:
        mid = (p[1] + q[1]) / 2
        path = f"M{p[0]:g},{p[1]:g} C{p[0]:g},{mid:g} {q[0]:g},{mid:g} {q[0]:g},{q[1] - 1:g}"
        self.g.edges.append(Edge(a, b, kind, path, (q[0], q[1], 0, 1) if arrow else None))

    def side_edges(self) -> None:
        """Routes and jumps that skip steps: out of the source's right side, along a lane,
        into the target's right side. Each edge has a lane of its own wherever it overlaps
        another; shorter ones run nearer the steps."""
        slots: dict[str, list[tuple[float, int]]] = {}
        for n, (source, target, _, _) in enumerate(self.side):
            a, b = self.anchors[source], self.anchors[target]
            slots.setdefault(source, []).append((b.y + b.h / 2, n))
            slots.setdefault(target, []).append((a.y + a.h / 2, n))
        port: dict[tuple[str, int], float] = {}
        for name, items in slots.items():
            box = self.anchors[name]
            step = box.h / (len(items) + 1)
            for k, (_, n) in enumerate(sorted(items)):
                port[(name, n)] = box.y + step * (k + 1)
        labels: list[Label] = []
        spans: list[tuple[float, float, int]] = []
        for n, (source, target, _, label) in enumerate(self.side):
            y1, y2 = port[(source, n)], port[(target, n)]
            spans.append((min(y1, y2), max(y1, y2), n))
            if label:
                labels.append(Label(clip(label, MAX_LABEL), self.w / 2 + 6, y1 - 4,
                                    title=label))
        right = max(b.right + (4 if b.stacked else 0) for b in self.g.boxes)
        right = max([right, *(lab.box()[2] for lab in labels)]) + 14
        lanes: list[list[tuple[float, float]]] = []
        lane_of: dict[int, int] = {}
        for lo, hi, n in sorted(spans, key=lambda s: s[1] - s[0]):
            for i, used in enumerate(lanes):
                if all(hi + 6 < a or lo - 6 > b for a, b in used):
                    used.append((lo, hi))
                    lane_of[n] = i
                    break
            else:
                lanes.append([(lo, hi)])
                lane_of[n] = len(lanes) - 1
        label_iter = iter(labels)
        for n, (source, target, kind, label) in enumerate(self.side):
            y1, y2 = port[(source, n)], port[(target, n)]
            lx = right + lane_of[n] * LANE
            r = min(8.0, abs(y2 - y1) / 2)
            d = 1 if y2 > y1 else -1
            x = self.w / 2
            path = (f"M{x:g},{y1:g} H{lx - r:g} Q{lx:g},{y1:g} {lx:g},{y1 + d * r:g} "
                    f"V{y2 - d * r:g} Q{lx:g},{y2:g} {lx - r:g},{y2:g} H{x + 1:g}")
            self.g.edges.append(Edge(self.node_id(source), self.node_id(target), kind, path,
                                     (x, y2, -1, 0), next(label_iter) if label else None,
                                     reach=lx))


def layout(d: WorkflowDefinition, marks: RunMarks | None = None, prefix: str = "") -> Graph:
    """The graph of ``d``; with ``marks``, as a run sees it (``prefix`` makes its element
    ids unique on a page that draws several)."""
    return _Layout(d, marks, prefix).run()
