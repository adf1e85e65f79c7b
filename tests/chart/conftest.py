"""Fixtures of the Helm chart tests (tests/chart)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tests import chart_render from this directory, whatever
# pytest's import mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from chart_render import HELM, KUBECTL, missing_tool_message  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def helm_binary() -> Path:
    """Every chart test needs helm: fail loudly (never skip) when it is missing."""
    if not HELM.is_file():
        pytest.fail(missing_tool_message(HELM), pytrace=False)
    return HELM


@pytest.fixture(scope="module")
def kubectl_binary() -> Path:
    if not KUBECTL.is_file():
        pytest.fail(missing_tool_message(KUBECTL), pytrace=False)
    return KUBECTL
