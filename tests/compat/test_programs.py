"""Ruvon programs, run here unchanged, against what Ruvon SDK 0.1.3 did with them.

Each directory in ``programs/`` is a small program written for the Ruvon SDK (its imports,
its YAML keys, its calling conventions). ``expected/<program>.json`` is what the reference
SDK did with it, recorded by ``scripts/record-compat.py``. Here the very same ``driver.py``
runs in a fresh process of this interpreter with ``PYTHONPATH=<repo root>:<program dir>``,
and its final status, state and trail (the order in which the steps ran) must equal the
recorded ones, after ids and timestamps are replaced by placeholders (``normalize.py``).

Every case is a strict xfail until this project provides what the program needs; the
reason names the first difference expected. A case that starts passing turns the suite red
until its marker is removed, which is the point. See README.md for the programs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .normalize import normalize

COMPAT = Path(__file__).resolve().parent
ROOT = COMPAT.parent.parent
PROGRAMS = COMPAT / "programs"
EXPECTED = COMPAT / "expected"
RUNNER = COMPAT / "run_program.py"
COMPARED = ("status", "state", "trail")

NAMES = sorted(p.name for p in PROGRAMS.iterdir() if (p / "driver.py").is_file())

NO_RUVON = "no `ruvon` package yet: the driver's `from ruvon.builder import WorkflowBuilder` fails"

# What ruvon-compat.md (§§4-7, 12) leads one to expect once `ruvon` imports. Informative only:
# the xfail reason names the first difference (above); these follow it.
THEN: dict[str, str] = {
    "async_step": "RW passes the model, not a dict, to an ASYNC function",
    "cron_schedule": "RW reads CRON_SCHEDULE `cron_expression`; the SDK reads `schedule`",
    "decision_docs_routes": (
        "decided divergence (ruvon-compat §12 rows 11-12): RW reads `target` and evaluates "
        "`state.amount > 10000`; SDK 0.1.3 ignores both, so its steps run in file order"),
    "decision_routes": "RW reads routes' `target`; these routes use the SDK's `next_step`",
    "http_step": (
        "decided divergence (ruvon-compat §12 row 23): RW makes HTTP steps work; "
        "SDK 0.1.3 fails every HTTP step (`HttpWorkflowStep` has no `func_path`)"),
    "human_in_loop": "RW waits as WAITING_HUMAN_INPUT from the moment it reaches the step",
    "human_input_rejected": (
        "after a rejected input the SDK is ACTIVE and skips input_model on the next call "
        "(validated_input None); RW keeps waiting and validates"),
    "loop_steps": "RW fails a LOOP that reaches max_iterations; the SDK stops silently",
    "parallel_fanout": "RW passes the model, not a dict, to PARALLEL tasks, and `item=`",
    "parallel_tasks": (
        "RW reads PARALLEL `tasks[].function_path`; the SDK reads `tasks[].function`"),
    "pause_directive": (
        "RW merges a pause's result and hands the resume input to the next step; "
        "the SDK does neither"),
    "saga_enable": "RW's Workflow has no `enable_saga_mode()`",
    "saga_yaml": "RW reads `saga_enabled`; the SDK reads `saga_mode`",
    "sub_workflow": "RW keys `sub_workflow_results` by workflow type; the SDK by child id",
}


def _case(name: str) -> Any:
    reason = NO_RUVON + (f"; then: {THEN[name]}" if name in THEN else "")
    return pytest.param(name, id=name, marks=pytest.mark.xfail(strict=True, reason=reason))


def run_driver(program: str, out_file: Path) -> dict[str, Any]:
    """Run ``programs/<program>/driver.py``'s main() here, in a fresh process."""
    program_dir = PROGRAMS / program
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(program_dir)]),
        "RUVON_COMPAT_PROJECT_ROOT": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(program_dir), str(out_file)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        pytest.fail(f"{program}: the driver failed (exit {proc.returncode}): {last[0]}\n"
                    f"{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out_file.read_text(encoding="utf-8"))
    return result


def test_every_program_has_an_expectation() -> None:
    recorded = sorted(p.stem for p in EXPECTED.glob("*.json"))
    assert recorded == NAMES, "run scripts/record-compat.py after adding or removing a program"
    assert len(NAMES) >= 12
    assert set(THEN) <= set(NAMES)


@pytest.mark.parametrize("program", [_case(name) for name in NAMES])
def test_program_behaves_as_on_ruvon_sdk(program: str, tmp_path: Path) -> None:
    expected = json.loads((EXPECTED / f"{program}.json").read_text(encoding="utf-8"))
    actual = normalize(run_driver(program, tmp_path / "result.json"))
    for key in COMPARED:
        assert actual.get(key) == expected[key], (
            f"{program}: {key} differs from Ruvon SDK 0.1.3\n"
            f"  SDK:  {json.dumps(expected[key], sort_keys=True)}\n"
            f"  here: {json.dumps(actual.get(key), sort_keys=True)}")
