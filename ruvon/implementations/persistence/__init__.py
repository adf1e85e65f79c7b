"""Ruvon's `ruvon.implementations.persistence` package."""
