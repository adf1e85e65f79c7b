"""Ruvon's `ruvon.implementations.observability` package."""
