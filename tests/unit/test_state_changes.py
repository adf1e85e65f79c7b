"""What a step changed in the state, as its history row records it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ruvon_workers.engine.changes import VALUE_LIMIT, bounded, detached, state_changes
from ruvon_workers.utils.serialization import dumps_bytes


def test_an_added_key_is_changed() -> None:
    assert state_changes({"a": 1}, {"a": 1, "b": "new"}) == {"changed": {"b": "new"}}


def test_a_key_with_another_value_is_changed_with_its_whole_top_level_value() -> None:
    before = {"amount": 10, "order": {"lines": [1, 2], "status": "open"}}
    after = {"amount": 12, "order": {"lines": [1, 2], "status": "paid"}}
    assert state_changes(before, after) == {
        "changed": {"amount": 12, "order": {"lines": [1, 2], "status": "paid"}}}


def test_a_removed_key_is_listed() -> None:
    assert state_changes({"a": 1, "gone": 2, "also": 3}, {"a": 1}) == {
        "removed": ["gone", "also"]}


def test_nothing_changed_gives_no_detail() -> None:
    state = {"a": 1, "b": {"c": [1, 2]}}
    assert state_changes(state, {"a": 1, "b": {"c": [1, 2]}}) == {}
    assert state_changes({}, {}) == {}


def test_a_value_of_another_json_type_is_a_change() -> None:
    # Equal in Python, not in the stored JSON.
    assert state_changes({"a": 1, "b": 0}, {"a": True, "b": 0.0}) == {
        "changed": {"a": True, "b": 0.0}}


def test_changed_and_removed_together() -> None:
    assert state_changes({"a": 1, "b": 2}, {"a": 3, "c": None}) == {
        "changed": {"a": 3, "c": None}, "removed": ["b"]}


def test_a_long_value_is_recorded_by_its_size() -> None:
    long_text = "x" * 5000
    size = len(dumps_bytes(long_text))
    assert state_changes({}, {"blob": long_text, "small": "ok"}) == {
        "changed": {"blob": {"truncated": True, "bytes": size}, "small": "ok"}}


def test_the_limit_is_on_the_encoded_bytes() -> None:
    at_limit = "y" * (VALUE_LIMIT - 2)  # the quotes make it VALUE_LIMIT bytes
    assert bounded(at_limit) == at_limit
    assert bounded(at_limit + "y") == {"truncated": True, "bytes": VALUE_LIMIT + 1}
    items = list(range(1000))
    assert bounded(items) == {"truncated": True, "bytes": len(dumps_bytes(items))}


class _Line(BaseModel):
    sku: str
    tags: list[str] = Field(default_factory=list)


class _Typed(BaseModel):
    lines: list[_Line] = Field(default_factory=list)
    totals: dict[str, float] = Field(default_factory=dict)
    note: str | None = None


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    anything: Any = None
    bag: dict[str, Any] = Field(default_factory=dict)
    lines: list[_Line] = Field(default_factory=list)


def test_a_typed_state_is_not_copied() -> None:
    state = {"lines": [{"sku": "a", "tags": ["x"]}], "totals": {"a": 1.0}, "note": None}
    assert detached(_Typed, state) is state


def test_values_a_model_holds_by_reference_are_copied_before_the_step() -> None:
    state = {"anything": {"n": 1}, "bag": {"inner": {"n": 1}}, "extra": [1],
             "lines": [{"sku": "a", "tags": []}]}
    before = detached(_Loose, state)
    model = _Loose.model_validate(state)
    # A step changing values in place that validation did not copy:
    model.anything["n"] = 2
    model.bag["inner"]["n"] = 2
    assert model.__pydantic_extra__ is not None
    model.__pydantic_extra__["extra"].append(2)
    after = model.model_dump(mode="json")
    assert state_changes(before, after) == {"changed": {
        "anything": {"n": 2}, "bag": {"inner": {"n": 2}}, "extra": [1, 2]}}
    assert before["lines"] is state["lines"]  # rebuilt by validation: not copied
