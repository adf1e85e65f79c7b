"""Worker processes for the benchmark, and their memory as the kernel reports it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            kids.extend(int(k) for k in text)
    except OSError:
        return []
    return kids


def process_tree(pid: int) -> list[int]:
    tree = [pid]
    for child in _children(pid):
        tree.extend(process_tree(child))
    return tree


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_kb(pids: list[int]) -> int:
    return sum(_status_kb(p, "VmRSS") for p in pids)


def peak_rss_kb(pids: list[int]) -> int:
    return max((_status_kb(p, "VmHWM") for p in pids), default=0)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, ValueError, IndexError):
        return 0.0


class WorkerProcess:
    def __init__(self, cmd: list[str], env: dict[str, str], log: Path):
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def ruvon_worker(index: int, env: dict[str, str], tmp: Path, concurrency: int,
                 pool: str, queue: str) -> WorkerProcess:
    heartbeat = tmp / f"heartbeat-{index}"
    env = {**env, "RUVON_HEARTBEAT_FILE": str(heartbeat), "RUVON_METRICS_PORT": "0"}
    cmd = [sys.executable, "-m", "ruvon_workers.cli.main", "worker", "--concurrency",
           str(concurrency), "--pool", pool, "--queues", queue, "--loglevel", "WARNING",
           "--hostname", f"bench{index}-{os.getpid()}@%h", "--without-mingle",
           "--without-gossip", "--without-heartbeat"]
    worker = WorkerProcess(cmd, env, tmp / f"ruvon-worker-{index}.log")
    deadline = time.monotonic() + 60
    while not heartbeat.exists():
        if not worker.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"benchmark worker did not start:\n{worker.tail()}")
        time.sleep(0.05)
    return worker


def baseline_worker(index: int, env: dict[str, str], tmp: Path, concurrency: int,
                    pool: str) -> WorkerProcess:
    cmd = [sys.executable, "-m", "celery", "-A", "ruvon_workers.bench.baseline:app", "worker",
           "--concurrency", str(concurrency), "--pool", pool, "--loglevel", "WARNING",
           "--hostname", f"baseline{index}-{os.getpid()}@%h", "--without-mingle",
           "--without-gossip", "--without-heartbeat"]
    return WorkerProcess(cmd, env, tmp / f"baseline-worker-{index}.log")
