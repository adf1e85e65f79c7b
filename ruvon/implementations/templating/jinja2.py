"""``Jinja2TemplateEngine``: render strings (and dicts and lists of them) in Jinja2's
sandbox; a template that cannot be rendered is returned unchanged, as Ruvon does."""

from __future__ import annotations

from typing import Any

from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(autoescape=False)


class Jinja2TemplateEngine:
    def __init__(self, context: dict[str, Any] | None = None):
        self.context = dict(context or {})

    def render(self, template: Any) -> Any:
        if isinstance(template, str):
            return self.render_string_template(template, self.context)
        if isinstance(template, dict):
            return {key: self.render(value) for key, value in template.items()}
        if isinstance(template, list):
            return [self.render(value) for value in template]
        return template

    def render_string_template(self, template: str, context: dict[str, Any]) -> str:
        try:
            return _ENV.from_string(template).render(**context)
        except Exception:
            return template


__all__ = ["Jinja2TemplateEngine"]
