"""Ruvon's `ruvon.implementations.expression_evaluator` package."""
