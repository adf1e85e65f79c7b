"""Example workflows that ship with the package (used by the demo and the docs)."""
