"""Ruvon programs, run here unchanged, against what Ruvon SDK 0.1.3 did with them.

Each directory in ``programs/`` is a small program written for the Ruvon SDK (its imports,
its YAML keys, its calling conventions). ``expected/<program>.json`` is what the reference
SDK did with it, recorded by ``scripts/record-compat.py``. Here the very same ``driver.py``
runs in a fresh process of this interpreter with ``PYTHONPATH=<repo root>:<program dir>``,
and its final status, state and trail (the order in which the steps ran) must equal the
recorded ones, after ids and timestamps are replaced by placeholders (``normalize.py``).

A program listed in ``PENDING`` is a strict xfail whose reason names the first difference
still there; one that starts passing turns the suite red until it leaves the list, which
is the point. See README.md for the programs.
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

# Programs that do not yet end here as they do on the SDK, with the first difference.
PENDING: dict[str, str] = {
    "async_step": "an ASYNC function gets the state model here; the SDK passes a dict",
    "decision_docs_routes": (
        "decided divergence (ruvon-compat §12 rows 11-12): conditions here are evaluated "
        "(`state.amount > 10000`); SDK 0.1.3 ignores them and runs its steps in file order"),
    "dynamic_injection": "injection actions other than INSERT_AFTER_CURRENT are refused "
                         "at load time; the SDK skips them",
    "fire_and_forget": (
        "initial_data_template is rendered from the state here; SDK 0.1.3 passes "
        "`{{state.x}}` literally and `{{ x }}` as \"\", which the child's model refuses here"),
    "http_step": (
        "decided divergence (ruvon-compat §12 row 23): HTTP steps work here, so the request "
        "reaches the local service and the run completes; SDK 0.1.3 fails every HTTP step"),
    "human_input_rejected": (
        "after a rejected input the SDK is ACTIVE and skips input_model on the next call "
        "(validated_input None); here the run keeps waiting and validates"),
    "loop_steps": "a WHILE loop reaching max_iterations fails here; the SDK stops silently",
    "parallel_fanout": "PARALLEL tasks get the state model here; the SDK passes a dict",
    "parallel_tasks": "PARALLEL tasks get the state model here; the SDK passes a dict",
    "pause_directive": (
        "a pause's result is merged and the resume input reaches the next step here; "
        "the SDK does neither"),
    "saga_enable": ("the in-place edits of the step that failed, and of a compensation "
                    "that failed, are discarded here; SDK 0.1.3 keeps them"),
    "saga_yaml": "compensations' returned dicts are merged here; SDK 0.1.3 keeps only "
                 "their in-place edits",
    "sub_workflow": ("`sub_workflow_results` is keyed by the child's type here; the SDK keys "
                     "it by the child's id, with its type, status, state and final result"),
}


def _case(name: str) -> Any:
    if name not in PENDING:
        return pytest.param(name, id=name)
    return pytest.param(name, id=name,
                        marks=pytest.mark.xfail(strict=True, reason=PENDING[name]))


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
    assert set(PENDING) <= set(NAMES)


@pytest.mark.parametrize("program", [_case(name) for name in NAMES])
def test_program_behaves_as_on_ruvon_sdk(program: str, tmp_path: Path) -> None:
    expected = json.loads((EXPECTED / f"{program}.json").read_text(encoding="utf-8"))
    actual = normalize(run_driver(program, tmp_path / "result.json"))
    for key in COMPARED:
        assert actual.get(key) == expected[key], (
            f"{program}: {key} differs from Ruvon SDK 0.1.3\n"
            f"  SDK:  {json.dumps(expected[key], sort_keys=True)}\n"
            f"  here: {json.dumps(actual.get(key), sort_keys=True)}")


def test_the_compatibility_page_gives_the_count_that_holds() -> None:
    page = (ROOT / "docs" / "ruvon-compat.md").read_text(encoding="utf-8")
    matching = len([n for n in NAMES if n not in PENDING])
    assert f"**{matching} of the {len(NAMES)} match**" in page
