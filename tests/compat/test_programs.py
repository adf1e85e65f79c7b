"""Ruvon programs, run here unchanged, against what Ruvon SDK 0.1.3 did with them.

Each directory in ``programs/`` is a small program written for the Ruvon SDK (its imports,
its YAML keys, its calling conventions). ``expected/<program>.json`` is what the reference
SDK did with it, recorded by ``scripts/record-compat.py``. Here the very same ``driver.py``
runs in a fresh process of this interpreter with ``PYTHONPATH=<repo root>:<program dir>``,
and its final status, state, trail (the order in which the steps ran) and calls (what each
``next_step`` call returned or raised, and the status after it) must equal the recorded
ones, after ids and timestamps are replaced by placeholders (``normalize.py``).

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
COMPARED = ("status", "state", "trail", "calls")

NAMES = sorted(p.name for p in PROGRAMS.iterdir() if (p / "driver.py").is_file())

# Programs that do not end here as they do on the SDK, with the difference. Each is a
# decided divergence (docs/ruvon-compat.md): SDK 0.1.3 breaks a documented feature there.
PENDING: dict[str, str] = {
    "decision_docs_routes": (
        "decided divergence (ruvon-compat §12 rows 11-12): conditions here are evaluated "
        "(`state.amount > 10000`); SDK 0.1.3 ignores them and runs its steps in file order"),
    "fire_and_forget": (
        "decided divergence (ruvon-compat §12 row 24): initial_data_template renders from the "
        "state here, a whole placeholder keeping its type (a number here, which the child's "
        "str field refuses); SDK 0.1.3 passes `{{state.x}}` literally and `{{ x }}` as \"\""),
    "http_step": (
        "decided divergence (ruvon-compat §12 row 23): HTTP steps work here, so the request "
        "reaches the local service and the run completes; SDK 0.1.3 fails every HTTP step"),
    "human_input_rejected": (
        "decided divergence (docs/ruvon-compat.md): after a rejected input SDK 0.1.3 skips "
        "input_model on the next call (validated_input None), so unchecked input reaches the "
        "step; here every input is validated"),
}


def _case(name: str) -> Any:
    if name not in PENDING:
        return pytest.param(name, id=name)
    return pytest.param(name, id=name,
                        marks=pytest.mark.xfail(strict=True, reason=PENDING[name]))


def program_path(program: str) -> str:
    """``PYTHONPATH`` for a program: this checkout, then the program's own directory."""
    return os.pathsep.join([str(ROOT), str(PROGRAMS / program)])


def run_driver(program: str, out_file: Path, env: dict[str, str] | None = None,
               timeout: float = 60) -> dict[str, Any]:
    """Run ``programs/<program>/driver.py``'s main() here, in a fresh process (``env``:
    more environment, e.g. ``RUVON_COMPAT_PROVIDERS``; see run_program.py)."""
    program_dir = PROGRAMS / program
    env = {
        **os.environ,
        # http_step's driver serves its scoring service on loopback.
        "RUVON_HTTP_ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(env or {}),
        "PYTHONPATH": program_path(program),
        "RUVON_COMPAT_PROJECT_ROOT": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(program_dir), str(out_file)],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
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


def assert_as_recorded(program: str, actual: dict[str, Any],
                       compared: tuple[str, ...] = COMPARED) -> None:
    """``actual`` (a driver's result) equals what the SDK did, key by key."""
    expected = json.loads((EXPECTED / f"{program}.json").read_text(encoding="utf-8"))
    actual = normalize(actual)
    for key in compared:
        assert actual.get(key) == expected[key], (
            f"{program}: {key} differs from Ruvon SDK 0.1.3\n"
            f"  SDK:  {json.dumps(expected[key], sort_keys=True)}\n"
            f"  here: {json.dumps(actual.get(key), sort_keys=True)}")


@pytest.mark.parametrize("program", [_case(name) for name in NAMES])
def test_program_behaves_as_on_ruvon_sdk(program: str, tmp_path: Path) -> None:
    assert_as_recorded(program, run_driver(program, tmp_path / "result.json"))


@pytest.mark.parametrize("program", [_case(name) for name in NAMES])
def test_program_on_a_sqlite_file_behaves_as_on_ruvon_sdk(program: str, tmp_path: Path) -> None:
    """The same program given Ruvon's ``SQLitePersistenceProvider`` (a file)."""
    providers = {"RUVON_COMPAT_PROVIDERS": f"sqlite:{tmp_path / 'workflows.db'}"}
    assert_as_recorded(program, run_driver(program, tmp_path / "result.json", providers))


def test_http_step_completes_here(tmp_path: Path) -> None:
    """http_step is a divergence because it completes here (PENDING's strict xfail would
    also pass if it failed for another reason): it reaches its local service."""
    result = run_driver("http_step", tmp_path / "result.json")
    assert result["status"] == "COMPLETED"
    assert result["state"]["score_result"]["status_code"] == 200


def test_the_compatibility_page_gives_the_count_that_holds() -> None:
    page = (ROOT / "docs" / "ruvon-compat.md").read_text(encoding="utf-8")
    matching = len([n for n in NAMES if n not in PENDING])
    assert f"**{matching} of the {len(NAMES)} match**" in page
