"""Where workflow state lives: PostgreSQL in production, memory for tests and prototypes."""

from __future__ import annotations

from .base import PersistenceProvider
from .memory import MemoryPersistenceProvider
from .postgres import PostgresPersistenceProvider

__all__ = ["MemoryPersistenceProvider", "PersistenceProvider", "PostgresPersistenceProvider"]
