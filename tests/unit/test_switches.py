"""RUVON_USE_ORJSON and RUVON_USE_UVLOOP are honoured on import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import asyncio, json
import ruvon_workers
from ruvon_workers.utils import serialization as s
policy = type(asyncio.get_event_loop_policy()).__module__
print(json.dumps({"orjson": s.USE_ORJSON, "uvloop": policy.startswith("uvloop"),
                  "roundtrip": s.deserialize(s.serialize({"a": [1, 2.5, None, "é"]}))}))
"""


@pytest.mark.parametrize(("flag", "expect"), [("true", True), ("false", False)])
def test_switches(flag: str, expect: bool) -> None:
    env = {**os.environ, "RUVON_USE_ORJSON": flag, "RUVON_USE_UVLOOP": flag}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE], env=env,
                         capture_output=True, text=True, check=True).stdout
    import json

    got = json.loads(out)
    assert got == {"orjson": expect, "uvloop": expect, "roundtrip": {"a": [1, 2.5, None, "é"]}}


def test_serialize_handles_models_and_dates() -> None:
    import datetime as dt

    from ruvon_workers.utils.serialization import deserialize, serialize

    from ..fixtures.models import CounterState

    text = serialize({"s": CounterState(count=2), "t": dt.date(2026, 1, 2)})
    assert deserialize(text)["s"]["count"] == 2 and deserialize(text)["t"] == "2026-01-02"
