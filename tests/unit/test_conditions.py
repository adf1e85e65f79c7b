from __future__ import annotations

import re

import pytest

from ruvon_workers.definitions.conditions import MAX_LENGTH, compile_expression
from ruvon_workers.errors import ConditionError

from ..fixtures.models import CounterState


@pytest.mark.parametrize(("expr", "expected"), [
    ("state.count > 3", True),
    ("count > 3 and label == 'x'", True),
    ("not (count < 3) or false", True),
    ("label in ['x', 'y']", True),
    ("'a' in path", False),
    ("state.path[0] == 'p'", True),
    ("state.missing is None", True),
    ("count >= -1", True),
    ("state.missing > 3", False),
])
def test_evaluates(expr: str, expected: bool) -> None:
    state = CounterState(count=5, label="x", path=["p"])
    assert bool(compile_expression(expr).evaluate(state)) is expected


@pytest.mark.parametrize(("expr", "expected"), [
    # len() and comparisons of lengths
    ("len(state.path) == 2", True),
    ("len(path) > 3", False),
    ("len(label) + len(path) == 4", True),
    # arithmetic
    ("count + 1 == 6", True),
    ("count - 1 == 4", True),
    ("count * 2 == 10", True),
    ("count / 2 == 2.5", True),
    ("count // 2 == 2", True),
    ("count % 2 == 1", True),
    ("-count == -5 and +count == 5", True),
    ("(count + 1) * 2 - 2 == 10", True),
    ("label + '!' == 'Ab!'", True),
    ("path + ['r'] == ['p', 'q', 'r']", True),
    ("'-' * 3 == '---'", True),
    ("path[-1] == 'q'", True),
    # functions
    ("abs(-3) == 3", True),
    ("min(3, count) == 3 and max(path) == 'q'", True),
    ("int('7') + 1 == 8 and float('2.5') == 2.5", True),
    ("str(count) == '5'", True),
    ("bool(label)", True),
    # methods of strings, lists and dicts
    ("label.lower() == 'ab' and label.upper() == 'AB'", True),
    ("' a '.strip() == 'a' and 'xa '.lstrip('x').rstrip() == 'a'", True),
    ("'an order'.title() == 'An Order'", True),
    ("label.startswith('A') and label.endswith(['x', 'b'])", True),
    ("label.count('b') == 1 and label.find('b') == 1", True),
    ("'a,b'.split(',') == ['a', 'b']", True),
    ("'12'.isdigit()", True),
    ("path.count('p') == 1 and path.index('q') == 1", True),
    ("data.get('k') == 1 and data.get('z') is None", True),
    ("'k' in data.keys() and data.values() == [1]", True),
    ("data.items() == [['k', 1]]", True),
    ("len(data) == 1", True),
])
def test_evaluates_lengths_arithmetic_and_allowed_calls(expr: str, expected: bool) -> None:
    state = {"count": 5, "label": "Ab", "path": ["p", "q"], "data": {"k": 1}}
    assert compile_expression(expr).evaluate(state) is expected


@pytest.mark.parametrize("expr", [
    "len(missing)",
    "missing + 1",
    "count / 0",
    "count % 0",
    "-label",
    "label - 1",
    "'%s' % label",  # strings are not formatted
    "int('x')",
    "label.get('a')",  # a dict method on a string
    "count.lower()",  # a string method on a number
    "missing.lower()",
    "path.index('zz')",
    "state.label.upper",  # a method is not a field
    "state.model_dump",
    "data.keys",
])
def test_a_value_of_the_wrong_type_gives_none(expr: str) -> None:
    state = {"count": 5, "label": "Ab", "path": ["p"], "data": {"k": 1}}
    assert compile_expression(expr).evaluate(state) is None
    assert compile_expression(f"({expr}) > 0").evaluate(state) is False  # so a route: false


def test_fields_of_a_model_state_but_not_its_methods() -> None:
    state = CounterState(count=5, label="x", path=["p"])
    assert compile_expression("len(state.path) == 1").evaluate(state) is True
    assert compile_expression("state.model_dump").evaluate(state) is None
    assert compile_expression("state.model_fields").evaluate(state) is None


def test_a_repetition_too_long_fails_when_it_is_evaluated() -> None:
    expr = compile_expression("label * count")
    assert expr.evaluate({"label": "ab", "count": 3}) == "ababab"
    with pytest.raises(ConditionError, match=f"too long \\(at most {MAX_LENGTH}\\)"):
        expr.evaluate({"label": "ab", "count": MAX_LENGTH})
    with pytest.raises(ConditionError, match="too long"):
        compile_expression("len(path * count) > 1").evaluate({"path": [1], "count": 10**9})


@pytest.mark.parametrize("expr", [
    "__import__('os')",
    "state.__class__",
    "(lambda: 1)()",
    "[x for x in path]",
    "state.count if True else 0",
    "open('/etc/passwd')",
    "eval('1')",
    "getattr(state, 'count')",
    "state.path[count]",
    "path[1:2]",
    "",
    "count >",
    # calls: only the allowed functions and methods, positional arguments only
    "label.format(1)",
    "path.copy()",
    "path.append(1)",
    "label.__len__()",
    "len(path)(1)",
    "len(x=path)",
    "len(*path)",
    "f'{label}'",
    # no powers, bitwise operators, or long repetitions of literals
    "count ** 2",
    "2 ** 2 ** 30",
    "count << 1",
    "count | 1",
    "'x' * 1000000000",
    "1000000000 * 'x'",
    "[0] * 200000",
])
def test_refuses_anything_else(expr: str) -> None:
    with pytest.raises(ConditionError):
        compile_expression(expr)


@pytest.mark.parametrize(("expr", "message"), [
    ("count ** 2", "operator '**' is not allowed"),
    ("open('x')", "function 'open' is not allowed (allowed: abs, bool, float, int, len, max, "
                  "min, str)"),
    ("label.format(1)", "method 'format' is not allowed"),
    ("'x' * 1000000000", "a repetition of 1000000000 items is too long"),
    ("len(x=path)", "keyword arguments are not allowed"),
    ("label.__len__()", "attribute '__len__' is not allowed"),
])
def test_refusals_say_why(expr: str, message: str) -> None:
    with pytest.raises(ConditionError, match=re.escape(message)):
        compile_expression(expr)
