"""Ruvon's `ruvon.implementations.templating` package."""
