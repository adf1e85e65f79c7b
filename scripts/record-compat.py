#!/usr/bin/env python3
"""Record what the reference Ruvon SDK does with each program in tests/compat/programs.

Every program's ``driver.main()`` runs under the SDK's interpreter (``RUVON_SDK_PYTHON``,
default ``/tmp/ruvon-sdk/bin/python``), in a fresh process whose working directory and
first ``sys.path`` entry are the program directory. Its result, without ids or timestamps
(tests/compat/normalize.py), is written to ``tests/compat/expected/<program>.json`` with
sorted keys, so recording twice gives identical files.

Create the SDK's virtual environment first (outside the repository; the project never
depends on it):

    python3 -m venv /tmp/ruvon-sdk
    /tmp/ruvon-sdk/bin/pip install ruvon_sdk-0.1.3-py3-none-any.whl

Usage: ``python scripts/record-compat.py [--check] [PROGRAM ...]``. ``--check`` writes
nothing and exits 1 when a recorded file differs from what the SDK does now.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "tests" / "compat"
PROGRAMS = COMPAT / "programs"
EXPECTED = COMPAT / "expected"
RUNNER = COMPAT / "run_program.py"
DEFAULT_SDK_PYTHON = "/tmp/ruvon-sdk/bin/python"

sys.path.insert(0, str(ROOT))
from tests.compat.normalize import normalize  # noqa: E402


def sdk_env(program_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(program_dir)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def sdk_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('ruvon-sdk'))"],
        capture_output=True, text=True, check=True, cwd=tempfile.gettempdir(),
    )
    return out.stdout.strip()


def record(python: str, program_dir: Path, version: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "result.json"
        proc = subprocess.run(
            [python, str(RUNNER), str(program_dir), str(out_file)],
            capture_output=True, text=True, env=sdk_env(program_dir), timeout=120,
        )
        if proc.returncode != 0 or not out_file.exists():
            raise RuntimeError(
                f"{program_dir.name}: the driver failed under the SDK "
                f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        result = json.loads(out_file.read_text(encoding="utf-8"))
    expected = normalize(result)
    expected["program"] = program_dir.name
    expected["recorded_with"] = f"ruvon-sdk {version}"
    return expected


def render(expected: dict[str, Any]) -> str:
    return json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("programs", nargs="*", help="program names (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the recorded files instead of writing them")
    args = parser.parse_args()

    python = os.environ.get("RUVON_SDK_PYTHON", DEFAULT_SDK_PYTHON)
    if not Path(python).exists():
        print(f"error: no SDK interpreter at {python}; create the venv first "
              "(see this script's docstring) or set RUVON_SDK_PYTHON", file=sys.stderr)
        return 2
    version = sdk_version(python)

    available = sorted(p.name for p in PROGRAMS.iterdir() if (p / "driver.py").is_file())
    names = args.programs or available
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"error: unknown programs: {', '.join(unknown)}", file=sys.stderr)
        return 2

    EXPECTED.mkdir(parents=True, exist_ok=True)
    differing = []
    for name in names:
        text = render(record(python, PROGRAMS / name, version))
        target = EXPECTED / f"{name}.json"
        if args.check:
            same = target.exists() and target.read_text(encoding="utf-8") == text
            print(f"{'same' if same else 'DIFFERS'}  {name}")
            if not same:
                differing.append(name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"recorded  {name}  ({json.loads(text)['status']})")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
