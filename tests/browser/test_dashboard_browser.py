"""The dashboard in headless Chromium, driven as a person would, over a real fleet: sign
in, find a failed run, open its timeline, retry it, approve a waiting one, and see both
complete. ``RUVON_UPDATE_DOCS=1`` refreshes the screenshots in ``docs/``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.conftest import FleetWorker
from tests.helpers import free_port
from tests.server.conftest import REGISTRY, ROOT, InProcess, order

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TOKEN = "browser-operator-token-0123456789"


@pytest.fixture
def runs(database_url: str) -> InProcess:
    return InProcess(database_url)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (apt-get install -y chromium)")


@pytest.fixture
def fleet(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[str]:
    """A worker and ``ruvon-workers server`` on this test's database and broker; the
    server's URL."""
    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": redis_url,
           "RUVON_REGISTRY": str(REGISTRY), "PYTHONPATH": str(ROOT),
           "RUVON_DEFAULT_QUEUE": f"ruvon-{uuid.uuid4().hex[:8]}",
           "RUVON_HEARTBEAT_FILE": str(tmp_path / "heartbeat"), "RUVON_METRICS_PORT": "0",
           "POSTGRES_POOL_MIN_SIZE": "1", "POSTGRES_POOL_MAX_SIZE": "4",
           "RUVON_API_TOKEN": TOKEN, "RUVON_FLOWER_URL": "http://127.0.0.1:5555"}
    worker = FleetWorker(env, tmp_path / "worker.log", "--concurrency", "2").wait_ready()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ruvon_workers.cli.main", "server", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=15)
        worker.stop()


async def _seed(runs: InProcess, database_url: str) -> tuple[str, str]:
    """A run that failed to ship (its address since corrected) and one waiting for a
    manager's approval."""
    failed = await runs.run(order("SHIP-1", country="XX"), key="order-SHIP-1")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE workflow_executions SET state = jsonb_set(state, "
                     "'{ship_to_country}', '\"DE\"') WHERE id = %s", (failed,))
    waiting = await runs.run(order("BIG-1", unit_price=2500), key="order-BIG-1")
    return failed, waiting


def test_find_retry_and_approve_in_a_browser(fleet: str, runs: InProcess, database_url: str,
                                            tmp_path: Path) -> None:
    import asyncio

    chromium()
    pytest.importorskip("playwright", reason="pip install playwright (a dev dependency)")
    from playwright.sync_api import expect, sync_playwright

    failed, waiting = asyncio.run(_seed(runs, database_url))
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            # Sign in: the dashboard sends a stranger to the login page.
            page.goto(f"{fleet}/ui/")
            expect(page).to_have_url(f"{fleet}/ui/login?next=%2Fui%2F")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Overview")
            expect(page.locator("#live")).to_contain_text("FAILED_ROLLED_BACK")
            page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)

            # Find the failed run from the workflows list.
            page.click("nav >> text=Workflows")
            page.select_option("select[name=status]", "FAILED_ROLLED_BACK")
            page.click("form.filters button")
            page.click(f"a[href='/ui/workflows/{failed}']")
            timeline = page.locator(".timeline")
            expect(timeline).to_contain_text("Ship_Order")
            expect(timeline).to_contain_text("no carrier ships to XX")
            # The definition's graph marks where it failed.
            failed_node = page.locator("svg.wfgraph g.node.failed")
            expect(failed_node).to_have_attribute("data-step", "Ship_Order")
            expect(failed_node).to_contain_text("failed")
            page.screenshot(path=str(shots / "dashboard-workflow.png"), full_page=True)

            # Retry it from the charge (the address was corrected).
            page.select_option("select[name=from_step]", "Charge_Payment")
            page.click("form[action$='/retry'] button")
            expect(page.locator(".flash.ok")).to_contain_text("Retried from Charge_Payment")

            # Approve the waiting one from the approvals page.
            page.click("nav >> text=Approvals")
            card = page.locator("section.approval", has_text=waiting[:8])
            expect(card).to_contain_text("Manager_Approval")
            page.screenshot(path=str(shots / "dashboard-approvals.png"), full_page=True)

            # Its own page: the graph highlights the step it waits at.
            card.locator(f"a[href='/ui/workflows/{waiting}']").first.click()
            current = page.locator("svg.wfgraph g.node.current")
            expect(current).to_have_count(1)
            expect(current).to_have_attribute("data-step", "Manager_Approval")
            expect(current).to_contain_text("current")
            expect(page.locator("svg.wfgraph g.node.r-completed[data-step='Check_Amount']")
                   ).to_be_visible()
            page.click("nav >> text=Approvals")
            card = page.locator("section.approval", has_text=waiting[:8])

            # Every definition drawn.
            page.click("nav >> text=Definitions")
            expect(page.locator("svg.wfgraph")).to_have_count(5)
            expect(page.locator("#OrderFulfillment-step-Screen_Order-branch-2")).to_be_visible()
            page.screenshot(path=str(shots / "dashboard-definitions.png"), full_page=True)
            page.click("nav >> text=Approvals")
            card.locator("select[name='field.approved']").select_option("true")
            card.locator("input[name='field.approver']").fill("dana")
            card.locator("button[type=submit]").click()
            expect(page.locator(".flash.ok")).to_contain_text(f"Resumed {waiting}")

            # Both end: the worker runs them to completion.
            for workflow_id in (failed, waiting):
                deadline = time.monotonic() + 60
                while True:
                    page.goto(f"{fleet}/ui/workflows/{workflow_id}")
                    if "COMPLETED" in page.locator("p.meta").inner_text():
                        break
                    assert time.monotonic() < deadline, page.locator("p.meta").inner_text()
                    time.sleep(0.5)
                expect(page.locator(".timeline")).to_contain_text("Send_Confirmation")
        finally:
            browser.close()
    for shot in shots.iterdir():
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.getenv("RUVON_UPDATE_DOCS") == "1":
            shutil.copyfile(shot, ROOT / "docs" / shot.name)
