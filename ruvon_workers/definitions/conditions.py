"""A restricted evaluator for DECISION routes, LOOP paths and templates.

Grammar: names (``state.amount`` or just ``amount``), attribute and constant-index
access, literals, comparisons (``== != < <= > >= in not in is is not``), ``and``/``or``/
``not``, unary minus and list/tuple literals. Expressions are parsed with :mod:`ast`
and walked by this module; user text is never passed to ``eval``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..errors import ConditionError as ConditionError  # re-exported: its old home

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_CONSTANT_NAMES = {"true": True, "false": False, "null": None, "none": None}
_MISSING = object()


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.expr

    def evaluate(self, state: Mapping[str, Any] | BaseModel, **extra: Any) -> Any:
        return _Evaluator(state, extra).visit(self.tree)


def compile_expression(source: str) -> Expression:
    """Parse ``source`` and refuse anything outside the grammar."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError("expression is empty")
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConditionError(f"not a valid expression ({exc.msg})") from None
    _check(tree)
    return Expression(source, tree)


def _check(node: ast.AST) -> None:  # noqa: C901 - one branch per node type
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
            raise ConditionError(f"operator '{type(node.op).__name__}' is not allowed")
        _check(node.operand)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ConditionError(f"comparison '{type(op).__name__}' is not allowed")
        _check(node.left)
        for comparator in node.comparators:
            _check(comparator)
    elif isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise ConditionError(f"name '{node.id}' is not allowed (leading underscore)")
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            raise ConditionError(f"attribute '{node.attr}' is not allowed (leading underscore)")
        _check(node.value)
    elif isinstance(node, ast.Subscript):
        if not isinstance(node.slice, ast.Constant):
            raise ConditionError("only constant indexes are allowed, e.g. items[0] or data['key']")
        _check(node.value)
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        for elt in node.elts:
            _check(elt)
    elif isinstance(node, ast.Constant):
        return
    else:
        raise ConditionError(
            f"'{type(node).__name__}' is not allowed: use names from the state, literals, "
            "comparisons, and/or/not and 'in'"
        )


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        return container.get(key, _MISSING) if isinstance(key, str) else container[key]
    if isinstance(container, BaseModel) and isinstance(key, str):
        return getattr(container, key, _MISSING)
    if isinstance(container, list | tuple | str) and isinstance(key, int):
        return container[key]
    if isinstance(key, str) and not key.startswith("_") and hasattr(container, key):
        return getattr(container, key)
    return _MISSING


class _Evaluator:
    def __init__(self, state: Mapping[str, Any] | BaseModel, extra: Mapping[str, Any]):
        self.state = state
        self.extra = extra

    def visit(self, node: ast.AST) -> Any:  # noqa: C901 - one branch per node type
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            value = _lookup(self.visit(node.value), node.attr)
            return None if value is _MISSING else value
        if isinstance(node, ast.Subscript):
            assert isinstance(node.slice, ast.Constant)
            try:
                value = _lookup(self.visit(node.value), node.slice.value)
            except (IndexError, KeyError, TypeError):
                return None
            return None if value is _MISSING else value
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                result: Any = True
                for value in node.values:
                    result = self.visit(value)
                    if not result:
                        return result
                return result
            result = False
            for value in node.values:
                result = self.visit(value)
                if result:
                    return result
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            if isinstance(node.op, ast.USub):
                return -operand
            return +operand
        if isinstance(node, ast.Compare):
            left = self.visit(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.visit(comparator)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:
                    # Comparing None with a number means the field is unset: false.
                    return False
                left = right
            return True
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.visit(elt) for elt in node.elts]
        raise ConditionError(f"'{type(node).__name__}' is not allowed")  # pragma: no cover

    def _name(self, name: str) -> Any:
        if name in self.extra:
            return self.extra[name]
        if name == "state":
            return self.state
        value = _lookup(self.state, name)
        if value is not _MISSING:
            return value
        lowered = name.lower()
        if lowered in _CONSTANT_NAMES:
            return _CONSTANT_NAMES[lowered]
        return None
