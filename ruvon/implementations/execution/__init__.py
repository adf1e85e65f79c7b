"""Ruvon's `ruvon.implementations.execution` package."""
