"""The order example: validate, decide by amount, approve, charge, ship, confirm."""
