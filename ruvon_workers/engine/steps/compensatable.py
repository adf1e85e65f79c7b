"""COMPENSATABLE: Ruvon's name for a STANDARD step with a ``compensate_function``.

Any step's ``compensate_function`` runs when the saga rolls back (``engine/saga.py``), so
the type only says what the step is for; as on Ruvon, the compensation is optional.
"""

from __future__ import annotations

from .function import FunctionStep


class CompensatableStep(FunctionStep):
    """Calls ``function`` like a STANDARD step."""
