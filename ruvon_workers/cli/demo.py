"""``ruvon-workers demo``: the example orders, end to end, with nothing to set up."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import click

from .. import settings
from ..builder import WorkflowBuilder
from ..errors import WorkflowFailedException
from ..execution import SyncExecutionProvider
from ..persistence import PostgresPersistenceProvider
from ..persistence import migrate as migrations
from .output import console, handle_errors, table

DEMO_ORDERS: list[tuple[str, dict[str, Any]]] = [
    ("small order", {"order_id": "A-100", "customer_id": "c-1", "ship_to_country": "DE",
                     "items": [{"sku": "book", "quantity": 2, "unit_price": 12.5}]}),
    ("large order, needs approval", {
        "order_id": "A-200", "customer_id": "c-2", "ship_to_country": "FR",
        "items": [{"sku": "laptop", "quantity": 1, "unit_price": 1899.0}]}),
    ("unshippable order, refunded", {
        "order_id": "A-300", "customer_id": "c-3", "ship_to_country": "ZZ",
        "items": [{"sku": "lamp", "quantity": 1, "unit_price": 40.0}]}),
]


@contextlib.contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from ..embedded import embedded_services

    console.print("No DATABASE_URL set: starting an embedded PostgreSQL ...")
    with embedded_services(redis=False) as services:
        yield services.database_url


@click.command()
@click.option("--registry", type=click.Path(dir_okay=False), default=None,
              help="Registry to load [env: RUVON_REGISTRY; default: the example].")
@handle_errors
def demo(registry: str | None) -> None:
    """Run the example order workflows and print how each ended.

    Uses DATABASE_URL when set, otherwise an embedded PostgreSQL that is removed after.
    """
    builder = WorkflowBuilder.from_registry(settings.registry_path(registry))
    with _database(settings.database_url(required=False)) as url:
        migrations.migrate(url)
        results = asyncio.run(_run(builder, url))
    table("Demo results", ["order", "status", "steps", "outcome"], results)
    console.print("\nNext: `ruvon-workers validate config/workflow_registry.yaml`, "
                  "and the README for the Python API.")


async def _run(builder: WorkflowBuilder, url: str) -> list[tuple[str, ...]]:
    os.environ.setdefault("POSTGRES_POOL_MIN_SIZE", "1")
    persistence = PostgresPersistenceProvider(url)
    await persistence.initialize()
    rows: list[tuple[str, ...]] = []
    try:
        for label, data in DEMO_ORDERS:
            wf = await builder.create_workflow("OrderProcessing", data,
                                               persistence_provider=persistence,
                                               execution_provider=SyncExecutionProvider())
            console.print(f"[bold]{label}[/] ({wf.id})")
            try:
                while wf.status in ("ACTIVE", "WAITING_HUMAN_INPUT"):
                    step = wf.current_step_name
                    if wf.status == "WAITING_HUMAN_INPUT":
                        console.print(f"  {step}: waiting for a manager ... approving as 'dana'")
                        await wf.next_step({"approved": True, "approver": "dana"})
                    else:
                        await wf.next_step()
                    console.print(f"  [green]✓[/] {step}")
            except WorkflowFailedException as exc:
                console.print(f"  [red]✗[/] {exc}")
            history = await wf.history()
            steps = sum(1 for h in history if h.status == "COMPLETED")
            outcome = ", ".join(wf.state.log)  # type: ignore[attr-defined]
            rows.append((label, wf.status, str(steps), outcome))
    finally:
        await persistence.close()
    return rows
