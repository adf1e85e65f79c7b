"""What Ruvon's persistence providers add to the stores: the calls Ruvon programs make."""

from __future__ import annotations

from typing import Any


class RuvonPersistence:
    """Ruvon's ``save_workflow``: here every transition is stored as it commits, and a
    new workflow when it is created, so saving a workflow this store already holds
    changes nothing."""

    async def save_workflow(self, workflow_id: str, workflow_data: Any) -> None:
        if await self.load_workflow(workflow_id) is None:  # type: ignore[attr-defined]
            raise LookupError(
                f"workflow {workflow_id} is not in this store: create workflows with "
                "WorkflowBuilder.create_workflow(..., persistence_provider=this store)")
