"""Rendering for the Helm chart tests: run the helm binary installed by
scripts/install-k8s-tools.sh on helm/ruvon-workers and load the output as YAML."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "ruvon-workers"
CI_VALUES_DIR = CHART_DIR / "ci"
TOOLS_DIR = REPO_ROOT / ".tools" / "bin"
HELM = TOOLS_DIR / "helm"
KUBECTL = TOOLS_DIR / "kubectl"

RELEASE = "ruvon"
NAMESPACE = "ruvon-test"
# Release "ruvon" contains the chart name's prefix but not the whole name, so
# objects are named "<release>-ruvon-workers-...".
FULLNAME = f"{RELEASE}-ruvon-workers"

# Credentials used by the tests; they must only ever appear inside Secrets.
DB_PASSWORD = "db-pw-4f1c9e"
REDIS_PASSWORD = "redis-pw-8b2d7a"
DATABASE_URL = f"postgresql://ruvon:{DB_PASSWORD}@postgres.example.svc:5432/ruvon"
BROKER_URL = f"redis://:{REDIS_PASSWORD}@redis.example.svc:6379/0"
BASE_SET = (f"secrets.databaseUrl={DATABASE_URL}", f"secrets.brokerUrl={BROKER_URL}")

CI_VALUE_FILES = sorted(p.name for p in CI_VALUES_DIR.glob("*.yaml"))


def missing_tool_message(path: Path) -> str:
    return (
        f"{path} not found: the chart tests render with the helm and kubectl binaries in "
        ".tools/bin. Run scripts/install-k8s-tools.sh from the repository root first."
    )


@dataclass(frozen=True)
class Rendered:
    """The objects of one `helm template` run."""

    docs: tuple[dict, ...]

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, (
            f"expected one {kind} named {name}, got {len(found)}; "
            f"rendered: {sorted((d['kind'], d['metadata']['name']) for d in self.docs)}"
        )
        return found[0]

    def one(self, kind: str) -> dict:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    def count(self, kind: str) -> int:
        return len(self.of_kind(kind))

    def component(self, kind: str, component: str) -> dict:
        """The one object of a kind labelled app.kubernetes.io/component=<component>."""
        found = [
            d
            for d in self.of_kind(kind)
            if d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {component} {kind}, got {len(found)}"
        return found[0]

    @property
    def worker(self) -> dict:
        return self.component("Deployment", "worker")

    @property
    def worker_container(self) -> dict:
        return container(self.worker, "worker")


def pod_spec(obj: dict) -> dict:
    if obj["kind"] == "Pod":
        return obj["spec"]
    return obj["spec"]["template"]["spec"]


def container(obj: dict, name: str) -> dict:
    matches = [c for c in pod_spec(obj)["containers"] if c["name"] == name]
    assert len(matches) == 1, f"no container {name!r} in {obj['kind']}/{obj['metadata']['name']}"
    return matches[0]


def env_map(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def workloads(rendered: Rendered) -> Iterator[dict]:
    """Every object of the render that carries a pod spec."""
    for doc in rendered.docs:
        if doc["kind"] in ("Deployment", "Job", "Pod", "StatefulSet", "DaemonSet"):
            yield doc


def _helm_args(values_files: tuple[str, ...], set_values: tuple[str, ...], extra: tuple[str, ...]):
    args = [str(HELM), "template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
    for f in values_files:
        path = Path(f)
        args += ["--values", str(path if path.is_absolute() else CI_VALUES_DIR / f)]
    for s in set_values:
        args += ["--set", s]
    args += list(extra)
    return args


@functools.cache
def _render_cached(
    values_files: tuple[str, ...], set_values: tuple[str, ...], extra: tuple[str, ...]
) -> Rendered:
    proc = subprocess.run(
        _helm_args(values_files, set_values, extra),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.fail(f"helm template failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    return Rendered(docs)


def render(*set_values: str, values: tuple[str, ...] = (), base: bool = True, extra=()) -> Rendered:
    """Render the chart. With base=True the two connection URLs are set, as every
    install needs them (unless an existing Secret is named)."""
    sets = (BASE_SET if base else ()) + tuple(set_values)
    return _render_cached(tuple(values), sets, tuple(extra))


def render_ci(filename: str) -> Rendered:
    return _render_cached((filename,), (), ())


def render_error(
    *set_values: str, values: tuple[str, ...] = (), base: bool = True, extra=()
) -> str:
    """Render values the chart must refuse; return helm's error output."""
    sets = (BASE_SET if base else ()) + tuple(set_values)
    proc = subprocess.run(
        _helm_args(tuple(values), sets, tuple(extra)),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode != 0, (
        f"helm template accepted values it should refuse: {set_values} {values}\n"
        f"{proc.stdout[:2000]}"
    )
    return proc.stderr


def run_tool(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
