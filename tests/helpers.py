from __future__ import annotations

import socket
import textwrap
from pathlib import Path
from typing import TypeVar

from ruvon_workers import WorkflowBuilder

T = TypeVar("T")

STATE = "tests.fixtures.models.CounterState"
S = "tests.fixtures.steps"


def write_registry(tmp_path: Path, workflows: dict[str, str],
                   state_model: str = STATE) -> Path:
    """Write ``{type: steps_yaml}`` as a registry with one file per workflow."""
    entries = []
    for wf_type, body in workflows.items():
        (tmp_path / f"{wf_type}.yaml").write_text(textwrap.dedent(body))
        entries.append(f"  - type: {wf_type}\n    config_file: {wf_type}.yaml\n"
                       f"    initial_state_model: {state_model}\n")
    path = tmp_path / "workflow_registry.yaml"
    path.write_text("workflows:\n" + "".join(entries))
    return path


def workflow_yaml(steps: str, *, wf_type: str = "Test", saga: bool = False) -> str:
    return (f"workflow_type: {wf_type}\nworkflow_version: '1'\nsaga_enabled: {str(saga).lower()}\n"
            f"steps:\n{textwrap.indent(textwrap.dedent(steps), '  ')}")


def builder_for(tmp_path: Path, steps: str, *, saga: bool = False) -> WorkflowBuilder:
    return WorkflowBuilder.from_registry(
        write_registry(tmp_path, {"Test": workflow_yaml(steps, saga=saga)}))


#: The registry of the fleet and step-type fixtures (``tests/fixtures/fleet``).
FLEET_REGISTRY = Path(__file__).resolve().parent / "fixtures" / "fleet" / "workflow_registry.yaml"


def not_none(value: T | None) -> T:
    """``value``, which the test expects to be set: an assertion that also narrows its type
    (for an expression with no statement of its own, e.g. in a comprehension)."""
    assert value is not None
    return value


async def create_in_process(builder, persistence, workflow_type, data):
    """A new workflow on ``persistence`` that runs in-process (``SyncExecutionProvider``)."""
    from ruvon_workers.execution import SyncExecutionProvider

    return await builder.create_workflow(workflow_type, data, persistence_provider=persistence,
                                         execution_provider=SyncExecutionProvider())


async def run_while_active(wf):
    """Step ``wf`` until it ends, waits or fails."""
    while wf.status == "ACTIVE":
        await wf.next_step()
    return wf


class Outbox:
    """Stands in for the broker in a coordinator's tests: the step messages it sends, as
    ``(workflow_id, step, version, branch)`` (``handle_step``'s arguments), and the
    countdown each was sent with."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int, int | None]] = []
        self.countdowns: list[float | None] = []

    def step(self, workflow_type: str, step: str, workflow_id: str, version: int,
             countdown: float | None = None, branch: int | None = None) -> None:
        self.sent.append((workflow_id, step, version, branch))
        self.countdowns.append(countdown)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
