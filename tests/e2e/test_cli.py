"""The CLI as a user runs it: subprocesses, readable output, --json, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import FLEET_REGISTRY, ROOT, small_order


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", *args],
                          env={**env, "RUVON_REGISTRY": str(FLEET_REGISTRY)}, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_operator_commands(fleet_env, start_worker) -> None:
    start_worker("--concurrency", "2")
    done = cli(fleet_env, "start", "OrderProcessing", "-d", json.dumps(small_order(1)),
               "--wait", "30", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["status"] == "COMPLETED" and info["state"]["tracking_number"] == "TRK-o-1"

    waiting = cli(fleet_env, "start", "OrderProcessing", "-d",
                  json.dumps(small_order(2, amount=5000)), "-k", "order-2", "--wait", "30")
    assert waiting.returncode == 0 and "WAITING_HUMAN" in waiting.stdout
    wid = cli(fleet_env, "start", "OrderProcessing", "-d", json.dumps(small_order(2)),
              "-k", "order-2").stdout.strip()  # same key: same workflow
    assert wid in waiting.stdout

    listed = json.loads(cli(fleet_env, "list", "--status", "waiting_human_input",
                            "--json").stdout)
    assert [w["id"] for w in listed] == [wid]
    table = cli(fleet_env, "list")
    assert table.returncode == 0 and "WAITING_HUMAN" in table.stdout

    bad = cli(fleet_env, "resume", wid, "-i", '{"approved": "perhaps"}')
    assert bad.returncode == 4 and "approver" in bad.stderr and "approved" in bad.stderr
    not_json = cli(fleet_env, "resume", wid, "-i", "{approved")
    assert not_json.returncode == 4 and "not valid JSON" in not_json.stderr
    resumed = cli(fleet_env, "resume", wid, "-i", '{"approved": true, "approver": "kim"}',
                  "--wait", "30")
    assert resumed.returncode == 0 and "COMPLETED" in resumed.stdout

    logs = json.loads(cli(fleet_env, "logs", wid, "--json").stdout)
    assert [(r["step"], r["status"]) for r in logs if r["step"] == "Manager_Approval"] == [
        ("Manager_Approval", "WAITING"), ("Manager_Approval", "RESUMED"),
        ("Manager_Approval", "COMPLETED")]
    assert "Send_Confirmation" in cli(fleet_env, "logs", wid).stdout

    assert cli(fleet_env, "cancel", wid).returncode == 5  # finished: not allowed
    assert cli(fleet_env, "show", "00000000-0000-0000-0000-000000000000").returncode == 3
    unknown = cli(fleet_env, "start", "Nope", "-d", "{}")
    assert unknown.returncode == 3 and "Known types" in unknown.stderr


def test_retry_from_step_and_cancel(fleet_env, start_worker) -> None:
    start_worker("--concurrency", "2", env={"RUVON_TEST_SLOW_SECONDS": "4"})
    rolled = json.loads(cli(fleet_env, "start", "OrderProcessing", "-d",
                            json.dumps(small_order(3, country="ZZ")), "--wait", "30",
                            "--json").stdout)
    assert rolled["status"] == "FAILED_ROLLED_BACK"
    # Retrying a rolled-back workflow needs an explicit step.
    assert cli(fleet_env, "retry", rolled["id"]).returncode == 5
    again = cli(fleet_env, "retry", rolled["id"], "--from-step", "Charge_Payment")
    assert again.returncode == 0, again.stderr
    # It charges again, fails to ship again, and is rolled back again.
    for _ in range(100):
        logs = json.loads(cli(fleet_env, "logs", rolled["id"], "--json").stdout)
        if [r["status"] for r in logs].count("COMPENSATED") == 2:
            break
    steps = [(r["step"], r["status"]) for r in logs]
    assert ("Charge_Payment", "RETRIED") in steps
    assert steps.count(("Charge_Payment", "COMPLETED")) == 2
    assert steps.count(("Charge_Payment", "COMPENSATED")) == 2

    sleepy = cli(fleet_env, "start", "Sleepy", "-d", "{}").stdout.strip()
    cancelled = cli(fleet_env, "cancel", sleepy, "--reason", "not needed")
    assert cancelled.returncode == 0
    assert json.loads(cli(fleet_env, "show", sleepy, "--json").stdout)["status"] == "CANCELLED"
    retried = cli(fleet_env, "retry", sleepy)
    assert retried.returncode == 0
    assert json.loads(cli(fleet_env, "start", "Sleepy", "--wait", "30", "--json").stdout)[
        "status"] == "COMPLETED"


def test_start_without_a_worker_times_out_with_advice(fleet_env) -> None:
    proc = cli(fleet_env, "start", "Sleepy", "--wait", "1")
    assert proc.returncode == 7 and "Is a worker running?" in proc.stderr


def test_demo_runs_end_to_end(fleet_env) -> None:
    env = {k: v for k, v in fleet_env.items() if k != "RUVON_REGISTRY"}
    proc = subprocess.run([sys.executable, "-m", "ruvon_workers.cli.main", "demo"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "approving as 'dana'" in proc.stdout
    assert "21 COMPLETED, 1 FAILED_ROLLED_BACK" in proc.stdout
    # The fulfillment example: every step type, on the fleet.
    out = proc.stdout
    assert "Order fulfillment: what each step type did" in out
    assert ("3 OrderFulfillment workflows" in out and "3 COMPLETED; the workflows they started: "
            "3 Shipment COMPLETED, 3 CustomerEmail COMPLETED" in out)
    assert "3 checks: high risk (100)" in out and "inserted: reviewed, signature" in out
    assert "3 lines reserved, 3 branches" in out and "3 lines picked" in out
    assert "-> Gift_Wrap" in out and "-> Quote_Shipping" in out
    assert "200: ParcelCo 12.10 EUR" in out and "2 parcels, PAR-F-3-2" in out
    assert "daily-stock-report, next 06:00 UTC" in out
