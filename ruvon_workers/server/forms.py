"""HTML form fields from a step's input JSON Schema, and the submitted form back to
``user_input``: a boolean is a yes/no choice, a number a number field, an enum a choice,
a string a text field; anything else (objects, lists) is a JSON text area."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import FieldError


@dataclass(frozen=True)
class FormField:
    name: str
    kind: str  # "boolean", "integer", "number", "string", "enum" or "json"
    required: bool
    title: str
    description: str | None = None
    choices: list[Any] = field(default_factory=list)
    default: Any = None


def _plain(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The schema of a field, with ``Optional[X]`` (``anyOf: [X, null]``) read as X and a
    ``$ref`` followed."""
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return {**schema, **_plain(options[0], defs)}
    return schema


def fields(schema: dict[str, Any] | None) -> list[FormField]:
    if not schema:
        return []
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    out = []
    for name, raw in schema.get("properties", {}).items():
        prop = _plain(raw, defs)
        kind = prop.get("type")
        if "enum" in prop:
            kind = "enum"
        elif kind not in ("boolean", "integer", "number", "string"):
            kind = "json"
        out.append(FormField(name, str(kind), name in required, raw.get("title", name),
                             raw.get("description"), list(prop.get("enum", [])),
                             raw.get("default")))
    return out


def user_input(schema: dict[str, Any] | None, form: dict[str, str]) -> dict[str, Any]:
    """``user_input`` from a submitted form: the ``raw_json`` text area when filled in,
    else each field converted to its schema's type (an empty optional field is left out,
    so the model's default applies)."""
    raw = form.get("raw_json", "").strip()
    if raw:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FieldError(["form", "raw_json"], f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise FieldError(["form", "raw_json"], "must be a JSON object")
        return data
    out: dict[str, Any] = {}
    for f in fields(schema):
        text = form.get(f"field.{f.name}", "").strip()
        if text == "":
            continue
        try:
            if f.kind == "boolean":
                out[f.name] = text == "true"
            elif f.kind == "integer":
                out[f.name] = int(text)
            elif f.kind == "number":
                out[f.name] = float(text)
            elif f.kind == "json" or (f.kind == "enum" and f.choices
                                      and not isinstance(f.choices[0], str)):
                out[f.name] = orjson.loads(text)
            else:
                out[f.name] = text
        except ValueError:
            raise FieldError(["form", f.name], f"{text!r} is not a valid {f.kind}") from None
    return out
