"""Ruvon's `ruvon.implementations` package."""
