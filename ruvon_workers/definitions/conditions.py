"""A restricted evaluator for DECISION routes, LOOP paths and templates.

Grammar: names (``state.amount`` or just ``amount``), field and constant-index access,
literals, comparisons (``== != < <= > >= in not in is is not``), ``and``/``or``/``not``,
arithmetic (``+ - * / // %``, unary ``-`` and ``+``), list/tuple literals, the functions
in :data:`FUNCTIONS` (``len(state.items) > 3``) and the methods in :data:`METHODS` on
strings, lists and dicts (``state.country.lower() == 'us'``).

Expressions are parsed with :mod:`ast` and walked by this module; user text is never
passed to ``eval``. Refused when the expression is compiled (so when the definition
loads): any other syntax, names and attributes that start with ``_``, calls of anything
not on the lists, keyword arguments, ``**`` and a literal repetition longer than
:data:`MAX_LENGTH`. Attribute access reads state fields (dict keys and model fields),
nothing else of a Python object. At run time a value of the wrong type gives ``None``
(so a comparison with it is false), as a missing field does; a repetition longer than
:data:`MAX_LENGTH` raises :class:`ConditionError`.
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
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_SYMBOLS: dict[type[ast.operator], str] = {
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
    ast.BitAnd: "&", ast.MatMult: "@",
}
#: Functions an expression may call.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "abs": abs, "min": min, "max": max,
    "int": int, "float": float, "str": str, "bool": bool,
}
#: Methods an expression may call, by the kind of value they are called on.
METHODS: dict[str, frozenset[str]] = {
    "str": frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "title", "startswith",
                      "endswith", "count", "find", "split", "isdigit"}),
    "list": frozenset({"count", "index"}),
    "dict": frozenset({"get", "keys", "values", "items"}),
}
_ALL_METHODS = frozenset().union(*METHODS.values())
#: The longest string or list a repetition (``'-' * 20``) may make.
MAX_LENGTH = 100_000
#: What a call or an arithmetic operation on values of the wrong type raises: ``None``.
_VALUE_ERRORS = (TypeError, ValueError, ArithmeticError, AttributeError, KeyError)
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
    elif isinstance(node, ast.BinOp):
        _check_arithmetic(node)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ConditionError(f"comparison '{type(op).__name__}' is not allowed")
        _check(node.left)
        for comparator in node.comparators:
            _check(comparator)
    elif isinstance(node, ast.Call):
        _check_call(node)
    elif isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise ConditionError(f"name '{node.id}' is not allowed (leading underscore)")
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            raise ConditionError(f"attribute '{node.attr}' is not allowed (leading underscore)")
        _check(node.value)
    elif isinstance(node, ast.Subscript):
        if _constant_index(node.slice) is _MISSING:
            raise ConditionError("only constant indexes are allowed, e.g. items[0], items[-1] "
                                 "or data['key']")
        _check(node.value)
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        for elt in node.elts:
            _check(elt)
    elif isinstance(node, ast.Constant):
        return
    else:
        raise ConditionError(
            f"'{type(node).__name__}' is not allowed: use names from the state, literals, "
            "comparisons, and/or/not, 'in', arithmetic and the functions "
            f"{', '.join(sorted(FUNCTIONS))}"
        )


def _check_arithmetic(node: ast.BinOp) -> None:
    if type(node.op) not in _ARITHMETIC:
        symbol = _SYMBOLS.get(type(node.op), type(node.op).__name__)
        raise ConditionError(f"operator '{symbol}' is not allowed (use + - * / // %)")
    _check(node.left)
    _check(node.right)
    if isinstance(node.op, ast.Mult):
        # A repetition of literals is known now: refuse it when the file loads.
        for seq, times in ((node.left, node.right), (node.right, node.left)):
            length = _literal_length(seq)
            count = times.value if isinstance(times, ast.Constant) else None
            if length is not None and isinstance(count, int) and length * count > MAX_LENGTH:
                raise ConditionError(f"a repetition of {length * count} items is too long "
                                     f"(at most {MAX_LENGTH})")


def _literal_length(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        return len(node.value)
    if isinstance(node, ast.List | ast.Tuple):
        return len(node.elts)
    return None


def _check_call(node: ast.Call) -> None:
    if node.keywords:
        raise ConditionError("keyword arguments are not allowed in a call")
    func = node.func
    if isinstance(func, ast.Name):
        if func.id.startswith("_"):
            raise ConditionError(f"name '{func.id}' is not allowed (leading underscore)")
        if func.id not in FUNCTIONS:
            raise ConditionError(f"function '{func.id}' is not allowed (allowed: "
                                 f"{', '.join(sorted(FUNCTIONS))})")
    elif isinstance(func, ast.Attribute):
        if func.attr.startswith("_"):
            raise ConditionError(f"attribute '{func.attr}' is not allowed (leading underscore)")
        if func.attr not in _ALL_METHODS:
            allowed = "; ".join(f"{kind}: {', '.join(sorted(names))}"
                                for kind, names in METHODS.items())
            raise ConditionError(f"method '{func.attr}' is not allowed (allowed: {allowed})")
        _check(func.value)
    else:
        raise ConditionError("only the allowed functions and methods may be called")
    for arg in node.args:
        _check(arg)


def _constant_index(node: ast.expr) -> Any:
    """The value of a constant index (``0``, ``-1``, ``'key'``), else ``_MISSING``."""
    if isinstance(node, ast.Constant):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)):
        return -node.operand.value
    return _MISSING


def _lookup(container: Any, key: Any) -> Any:
    """A state field (dict key, model field) or a list item; nothing else of an object."""
    if isinstance(container, Mapping):
        return container.get(key, _MISSING) if isinstance(key, str) else container[key]
    if isinstance(container, BaseModel) and isinstance(key, str):
        cls = type(container)
        if (key in cls.model_fields or key in cls.model_computed_fields
                or key in (container.__pydantic_extra__ or {})):
            return getattr(container, key)
        return _MISSING
    if isinstance(container, list | tuple | str) and isinstance(key, int):
        return container[key]
    return _MISSING


def _kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return None


def _arithmetic(op: ast.operator, left: Any, right: Any) -> Any:
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return _ARITHMETIC[type(op)](left, right)
    if isinstance(op, ast.Add) and _kind(left) in ("str", "list") and _kind(left) == _kind(right):
        return left + right
    if isinstance(op, ast.Mult):
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if _kind(seq) in ("str", "list") and isinstance(times, int):
            if len(seq) * times > MAX_LENGTH:
                raise ConditionError(f"a repetition of {len(seq) * times} items is too long "
                                     f"(at most {MAX_LENGTH})")
            return seq * times
    return None  # e.g. None + 1, or '%s' % x: strings are not formatted


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
            try:
                value = _lookup(self.visit(node.value), _constant_index(node.slice))
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
            if not isinstance(operand, int | float):
                return None
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            left, right = self.visit(node.left), self.visit(node.right)
            try:
                return _arithmetic(node.op, left, right)
            except ConditionError:
                raise  # a repetition too long (a ValueError too)
            except _VALUE_ERRORS:
                return None  # e.g. a division by zero
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
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.visit(elt) for elt in node.elts]
        raise ConditionError(f"'{type(node).__name__}' is not allowed")  # pragma: no cover

    def _call(self, node: ast.Call) -> Any:
        args = [self.visit(arg) for arg in node.args]
        if isinstance(node.func, ast.Name):
            function = FUNCTIONS[node.func.id]
        else:
            assert isinstance(node.func, ast.Attribute)
            receiver = self.visit(node.func.value)
            kind = _kind(receiver)
            if kind is None or node.func.attr not in METHODS[kind]:
                return None  # no such method on this value (or a missing field)
            function = getattr(receiver, node.func.attr)
            if node.func.attr in ("startswith", "endswith"):
                args = [tuple(a) if isinstance(a, list) else a for a in args]
        try:
            result = function(*args)
        except _VALUE_ERRORS:
            return None  # e.g. len(None), int('x'), [1].index(2)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("keys", "values"):
            return list(result)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "items":
            return [list(pair) for pair in result]
        return result

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
