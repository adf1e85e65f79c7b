"""Load and validate ``workflow_registry.yaml`` and the workflow files it names.

Validation collects every problem before raising, so ``ruvon-workers validate`` can
print them all; each names the file, the step and the field (and the line when known).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import weakref
from collections.abc import Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConditionError, DefinitionError, DefinitionIssue, UnknownWorkflowType
from ..utils.imports import import_from_string
from .conditions import Expression, compile_expression
from .models import InjectionRule, StepDefinition, StepType, WorkflowDefinition

log = logging.getLogger("ruvon.definitions")

_LINE = "__line__"

_CALLABLE_FIELDS = ("function", "compensate_function", "merge_function_path", "task_function")

#: ``${VAR}`` or ``${VAR:-default}``: filled from the environment when the file loads.
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: A ``{{ parameters.x }}`` placeholder: filled from the file's ``parameters`` when it loads.
_PARAMETER = re.compile(r"\{\{\s*(parameters\b[^{}]*?)\s*\}\}")


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line where each mapping starts."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    # A YAML mapping's keys are any hashable scalar (``1: x``), not only strings.
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _read_yaml(path: Path, issues: list[DefinitionIssue]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        issues.append(DefinitionIssue(str(path), f"cannot read file ({exc.strerror})"))
        return None
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        issues.append(DefinitionIssue(str(path), f"malformed YAML: {problem}", line=line))
        return None


class Registry:
    """The workflow types of one registry file, loaded and validated; and the definitions
    earlier runs started with, when a file changed since (their stored snapshots)."""

    def __init__(self, path: Path, workflows: dict[str, WorkflowDefinition]):
        self.path = path
        self.workflows = workflows
        self._earlier: dict[str, WorkflowDefinition] = {}
        self._saved: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    async def remember(self, store: Any, definition: WorkflowDefinition) -> None:
        """Store ``definition``'s snapshot in ``store`` (once per store and fingerprint),
        before a run starts on it. A store without snapshots is left alone."""
        save = getattr(store, "save_definition", None)
        if save is None or definition.snapshot is None:
            return
        try:
            saved = self._saved.setdefault(store, set())
        except TypeError:  # not weak-referenceable: save every time (it is idempotent)
            saved = set()
        if definition.fingerprint in saved:
            return
        await save(definition.fingerprint, definition.workflow_type,
                   definition.workflow_version, definition.snapshot)
        saved.add(definition.fingerprint)

    async def for_record(self, store: Any, record: Any) -> WorkflowDefinition:
        """The definition ``record``'s run started with: the current one, or, when its
        file changed since, the stored snapshot (loaded once per process). Without one
        (a run started before snapshots were kept) the current definition is used."""
        current = self.get(record.workflow_type)
        wanted = record.runtime.definition
        if not wanted or wanted == current.fingerprint:
            return current
        earlier = self._earlier.get(wanted)
        if earlier is None:
            load = getattr(store, "load_definition", None)
            snapshot = await load(wanted) if load is not None else None
            if snapshot is None:
                log.warning("run %s started on a definition of %s that is not stored (%s); "
                            "it goes on with the current one", record.id,
                            record.workflow_type, wanted)
                return current
            earlier = definition_from_snapshot(
                snapshot, f"{current.source_file} (as stored when run {record.id} began)")
            self._earlier[wanted] = earlier
        return earlier

    def __contains__(self, workflow_type: object) -> bool:
        return workflow_type in self.workflows

    def __iter__(self) -> Iterator[WorkflowDefinition]:
        return iter(self.workflows.values())

    def get(self, workflow_type: str) -> WorkflowDefinition:
        try:
            return self.workflows[workflow_type]
        except KeyError:
            raise UnknownWorkflowType(workflow_type, list(self.workflows)) from None


def load_registry(path: str | Path) -> Registry:
    """Load a registry; raise :class:`DefinitionError` listing every problem found."""
    registry_path = Path(path)
    issues: list[DefinitionIssue] = []
    workflows: dict[str, WorkflowDefinition] = {}
    doc = _read_yaml(registry_path, issues)
    if doc is None and not issues:
        issues.append(DefinitionIssue(str(registry_path), "file is empty"))
    entries = doc.get("workflows") if isinstance(doc, dict) else None
    if doc is not None and not isinstance(entries, list):
        issues.append(
            DefinitionIssue(str(registry_path), "expected a top-level 'workflows:' list",
                            field="workflows")
        )
        entries = []
    for entry in entries or []:
        _load_entry(registry_path, entry, workflows, issues)
    _check_targets(workflows, issues)
    if issues:
        raise DefinitionError(issues)
    return Registry(registry_path, workflows)


def load_registry_mapping(entries: Mapping[str, Any], config_dir: str | Path,
                          *, source: str = "<workflow_registry>") -> Registry:
    """Load a registry given as Ruvon's builder takes it: ``{type: entry}``, each entry
    naming its ``config_file`` relative to ``config_dir`` and its state model; raise
    :class:`DefinitionError` listing every problem found."""
    base = Path(config_dir)
    issues: list[DefinitionIssue] = []
    workflows: dict[str, WorkflowDefinition] = {}
    for wf_type, entry in entries.items():
        if isinstance(entry, Mapping):
            entry = {"type": wf_type, **entry}
        _load_entry(base / source, entry, workflows, issues)
    _check_targets(workflows, issues)
    if issues:
        raise DefinitionError(issues)
    return Registry(base / source, workflows)


def _check_targets(workflows: dict[str, WorkflowDefinition],
                   issues: list[DefinitionIssue]) -> None:
    """FIRE_AND_FORGET and CRON_SCHEDULE steps must name a workflow type of the registry."""
    for defn in workflows.values():
        for step in defn.all_steps:
            target = step.target_workflow_type
            if target and target not in workflows:
                issues.append(DefinitionIssue(
                    defn.source_file, f"target_workflow_type '{target}' is not in the registry "
                                      f"(known: {', '.join(sorted(workflows))})",
                    step=step.name, field="target_workflow_type"))


def _load_entry(registry_path: Path, entry: Any, workflows: dict[str, WorkflowDefinition],
                issues: list[DefinitionIssue]) -> None:
    file = str(registry_path)
    if not isinstance(entry, dict):
        issues.append(DefinitionIssue(file, "each entry of 'workflows' must be a mapping"))
        return
    line = entry.get(_LINE)
    wf_type = entry.get("type")
    config_file = entry.get("config_file")
    if not wf_type:
        issues.append(DefinitionIssue(file, "workflow entry has no 'type'", field="type",
                                      line=line))
        return
    if wf_type in workflows:
        issues.append(DefinitionIssue(file, f"workflow type '{wf_type}' is registered twice",
                                      field="type", line=line))
        return
    if not config_file:
        issues.append(DefinitionIssue(file, f"workflow '{wf_type}' has no 'config_file'",
                                      field="config_file", line=line))
        return
    model_path = entry.get("initial_state_model") or entry.get("initial_state_model_path")
    definition = load_workflow_file(registry_path.parent / config_file, issues,
                                    state_model_path=model_path, expected_type=wf_type)
    if definition is not None:
        workflows[wf_type] = definition


def load_workflow_file(path: str | Path, issues: list[DefinitionIssue] | None = None, *,
                       state_model_path: str | None = None,
                       expected_type: str | None = None) -> WorkflowDefinition | None:
    """Load one workflow file. With ``issues`` given, problems are appended there and
    ``None`` is returned on failure; without, a :class:`DefinitionError` is raised."""
    own_issues: list[DefinitionIssue] = [] if issues is None else issues
    before = len(own_issues)
    definition = _WorkflowLoader(Path(path), own_issues).load(state_model_path, expected_type)
    if issues is None and own_issues:
        raise DefinitionError(own_issues)
    return definition if len(own_issues) == before else None


def definition_from_snapshot(snapshot: dict[str, Any], source: str) -> WorkflowDefinition:
    """The definition a stored snapshot describes (``WorkflowDefinition.snapshot``), its
    functions imported again; raise :class:`DefinitionError` naming ``source`` when it no
    longer loads (a function or model that is gone)."""
    issues: list[DefinitionIssue] = []
    document = snapshot.get("workflow")
    definition = None
    if isinstance(document, dict):
        loader = _WorkflowLoader(Path(source), issues)
        definition = loader.load(snapshot.get("state_model_path"), None, document)
    else:
        issues.append(DefinitionIssue(source, "the stored definition has no 'workflow'"))
    if definition is None or issues:
        raise DefinitionError(issues or [DefinitionIssue(source, "did not load")])
    return definition


def _with_environment(value: Any) -> Any:
    """``value`` with ``${VAR}`` / ``${VAR:-default}`` in its strings replaced from the
    environment, as Ruvon does when a file loads; an unset variable without a default is
    left as written."""
    if isinstance(value, dict):
        return {key: _with_environment(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_environment(item) for item in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is not None:
            return found
        return match.group(2) if match.group(2) is not None else match.group(0)

    return _ENV_VAR.sub(replace, value)


class _WorkflowLoader:
    def __init__(self, path: Path, issues: list[DefinitionIssue]):
        self.path = path
        self.file = str(path)
        self.issues = issues
        self.functions: dict[str, Any] = {}
        self.input_models: dict[str, type[BaseModel]] = {}
        self.routes: dict[str, list[tuple[Expression | None, str]]] = {}

    def issue(self, message: str, *, step: str | None = None, field: str | None = None,
              line: int | None = None) -> None:
        self.issues.append(DefinitionIssue(self.file, message, step=step, field=field, line=line))

    def load(self, state_model_path: str | None, expected_type: str | None,
             document: dict[str, Any] | None = None) -> WorkflowDefinition | None:
        """The definition in the file, or in ``document`` (a snapshot's content)."""
        doc = _read_yaml(self.path, self.issues) if document is None else document
        if doc is None:
            if self.path.exists() and not any(i.file == self.file for i in self.issues):
                self.issue("file is empty")
            return None
        if not isinstance(doc, dict):
            self.issue("expected a mapping with 'workflow_type' and 'steps'")
            return None
        doc = self._with_parameters(_with_environment(doc))
        wf_type = doc.get("workflow_type") or expected_type
        if not wf_type:
            self.issue("missing 'workflow_type'", field="workflow_type")
        elif expected_type and doc.get("workflow_type") not in (None, expected_type):
            self.issue(f"workflow_type '{doc['workflow_type']}' differs from the registry's "
                       f"type '{expected_type}'", field="workflow_type")
        model_path = doc.get("initial_state_model_path") or state_model_path
        state_model = self._state_model(model_path)
        raw_steps = doc.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            self.issue("'steps' must be a non-empty list", field="steps", line=doc.get(_LINE))
            raw_steps = []
        steps = self._steps(raw_steps)
        self._check_references(steps, raw_steps)
        injected, rules = self._injections(steps, raw_steps)
        if state_model is not None:
            self._check_output_keys([*steps, *injected], state_model)
        saga = any([self._flag(doc, "saga_enabled"), self._flag(doc, "saga_mode")])
        inline_steps = self._inline_steps(doc)
        if state_model is None or not wf_type or len(steps) != len(raw_steps):
            return None
        return WorkflowDefinition(
            workflow_type=str(wf_type),
            workflow_version=str(doc.get("workflow_version", "1")),
            description=str(doc.get("description") or ""),
            state_model=state_model,
            state_model_path=str(model_path),
            saga_enabled=saga,
            steps=steps,
            source_file=self.file,
            functions=self.functions,
            input_models=self.input_models,
            routes=self.routes,
            injected_steps=injected,
            injection_rules=rules,
            snapshot={"workflow": _strip_lines(doc), "state_model_path": str(model_path)},
            inline_steps=inline_steps,
        )

    def _with_parameters(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with every ``{{ parameters.x }}`` placeholder filled from its top-level
        ``parameters`` (Ruvon renders them when the file loads); other placeholders are
        left for run time."""
        params = doc.get("parameters")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self.issue("'parameters' must be a mapping", field="parameters")
            return doc
        values = {"parameters": _strip_lines(params)}
        return {key: value if key == "parameters" else self._fill(value, values, doc.get(_LINE))
                for key, value in doc.items()}

    def _fill(self, value: Any, values: dict[str, Any], line: int | None) -> Any:
        if isinstance(value, dict):
            line = value.get(_LINE, line)
            return {key: self._fill(item, values, line) for key, item in value.items()}
        if isinstance(value, list):
            return [self._fill(item, values, line) for item in value]
        if not isinstance(value, str) or "parameters" not in value:
            return value
        whole = _PARAMETER.fullmatch(value.strip())
        if whole:
            return self._parameter(whole, values, line)
        return _PARAMETER.sub(lambda m: str(self._parameter(m, values, line)), value)

    def _parameter(self, match: re.Match[str], values: dict[str, Any], line: int | None) -> Any:
        try:
            result = compile_expression(match.group(1)).evaluate(values)
        except ConditionError as exc:
            self.issue(f"placeholder '{match.group(0)}' is refused: {exc}", field="parameters",
                       line=line)
            return match.group(0)
        if result is None:
            self.issue(f"placeholder '{match.group(0)}' names no value of 'parameters'",
                       field="parameters", line=line)
            return match.group(0)
        return result

    def _inline_steps(self, doc: dict[str, Any]) -> int | None:
        """The workflow's own ``inline_steps`` (a fleet extension: the most steps one task
        of it runs), or ``None`` to follow the fleet's ``RUVON_INLINE_STEPS``."""
        value = doc.get("inline_steps")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.issue(f"'inline_steps' must be a whole number of 1 or more (1: every step "
                       f"is its own task), not {value!r}", field="inline_steps",
                       line=doc.get(_LINE))
            return None
        return value

    def _flag(self, doc: dict[str, Any], key: str) -> bool:
        """A top-level true/false key (``saga_mode`` is Ruvon's ``saga_enabled``)."""
        value = doc.get(key, False)
        if value is None or isinstance(value, bool):
            return bool(value)
        self.issue(f"'{key}' must be true or false, not {value!r}", field=key)
        return False

    def _state_model(self, model_path: str | None) -> type[BaseModel] | None:
        if not model_path:
            self.issue("no state model: set 'initial_state_model_path' here or "
                       "'initial_state_model' in the registry", field="initial_state_model_path")
            return None
        model = self._import(model_path, field="initial_state_model_path")
        if model is None:
            return None
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            self.issue(f"'{model_path}' is not a pydantic BaseModel subclass",
                       field="initial_state_model_path")
            return None
        return model

    def _import(self, path: str, *, field: str, step: str | None = None,
                line: int | None = None) -> Any:
        try:
            return import_from_string(path)
        except ImportError as exc:
            self.issue(f"'{path}' does not import: {exc}", step=step, field=field, line=line)
        except Exception as exc:  # an import that raises is still the user's to fix
            self.issue(f"importing '{path}' raised {type(exc).__name__}: {exc}",
                       step=step, field=field, line=line)
        return None

    def _steps(self, raw_steps: list[Any]) -> list[StepDefinition]:
        steps: list[StepDefinition] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_steps):
            if not isinstance(raw, dict):
                self.issue(f"step #{index + 1} must be a mapping")
                continue
            line = raw.get(_LINE)
            name = raw.get("name") or f"#{index + 1}"
            try:
                step = StepDefinition.model_validate(_strip_lines(raw))
            except ValidationError as exc:
                for err in exc.errors():
                    loc = ".".join(str(p) for p in err["loc"])
                    msg = err["msg"].removeprefix("Value error, ")
                    if loc == "type":
                        allowed = ", ".join(t.value for t in StepType)
                        msg = f"unknown step type '{raw.get('type')}' (allowed: {allowed})"
                    self.issue(msg, step=str(name), field=loc or None, line=line)
                continue
            if step.name in seen:
                self.issue("duplicate step name", step=step.name, field="name", line=line)
                continue
            seen.add(step.name)
            if self._step_ok(step, line):
                steps.append(step)
        return steps

    def _step_ok(self, step: StepDefinition, line: int | None) -> bool:
        before = len(self.issues)
        self._check_type_fields(step, line)
        self._check_template(step, line)
        for field in _CALLABLE_FIELDS:
            path = getattr(step, field)
            if path:
                obj = self._import(path, field=field, step=step.name, line=line)
                if obj is not None and not callable(obj):
                    self.issue(f"'{path}' is not callable", step=step.name, field=field, line=line)
                elif obj is not None:
                    self.functions[path] = obj
        for i, task in enumerate(step.tasks):
            obj = self._import(task.function_path, field=f"tasks[{i}].function", step=step.name,
                               line=line)
            if obj is not None:
                self.functions[task.function_path] = obj
        if step.input_model:
            model = self._import(step.input_model, field="input_model", step=step.name, line=line)
            if model is not None and not (inspect.isclass(model) and issubclass(model, BaseModel)):
                self.issue(f"'{step.input_model}' is not a pydantic BaseModel subclass",
                           step=step.name, field="input_model", line=line)
            elif model is not None:
                self.input_models[step.name] = model
        self._compile_routes(step, line)
        return len(self.issues) == before

    def _check_type_fields(self, step: StepDefinition, line: int | None) -> None:
        """What the step's type needs: each step type module checks its own fields and
        names the functions it calls beyond the common ones."""
        from ..engine.steps import kind_of

        kind = kind_of(step.type)
        for field in kind.required_fields:
            if not getattr(step, field):
                self.issue(f"a {step.type.value} step needs '{field}'", step=step.name,
                           field=field, line=line)
        for field, message in kind.problems(step):
            self.issue(message, step=step.name, field=field, line=line)
        for field, path in kind.function_paths(step):
            obj = self._import(path, field=field, step=step.name, line=line)
            if obj is not None:
                self.functions[path] = obj

    def _check_template(self, step: StepDefinition, line: int | None) -> None:
        if step.initial_data_template is not None:
            from ..engine.templates import template_problems

            if not isinstance(step.initial_data_template, dict):
                self.issue("initial_data_template must be a mapping", step=step.name,
                           field="initial_data_template", line=line)
            for field, message in template_problems(step.initial_data_template):
                self.issue(message, step=step.name, field=field, line=line)

    def _injections(self, steps: list[StepDefinition], raw_steps: list[Any]
                    ) -> tuple[list[StepDefinition], dict[str, list[InjectionRule]]]:
        """``dynamic_injection`` rules and the steps they insert (loaded like any step)."""
        names = {s.get("name") for s in raw_steps if isinstance(s, dict)}
        injected: list[StepDefinition] = []
        rules: dict[str, list[InjectionRule]] = {}
        lines = {s.get("name"): s.get(_LINE) for s in raw_steps if isinstance(s, dict)}
        for step in steps:
            spec = step.dynamic_injection
            if not spec:
                continue
            raw_rules = spec.get("rules") if isinstance(spec, dict) else spec
            line = lines.get(step.name)
            if not isinstance(raw_rules, list):
                self.issue("dynamic_injection needs a 'rules' list", step=step.name,
                           field="dynamic_injection", line=line)
                continue
            for i, raw in enumerate(raw_rules):
                field = f"dynamic_injection.rules[{i}]"
                rule = self._rule(step.name, field, raw, line)
                if rule is None:
                    continue
                loaded = self._steps(raw.get("steps_to_insert") or [])
                for new in loaded:
                    if new.name in names:
                        self.issue(f"inserted step '{new.name}' has the name of another step",
                                   step=step.name, field=f"{field}.steps_to_insert", line=line)
                        continue
                    names.add(new.name)
                    injected.append(new)
                rule.steps_to_insert = [new.name for new in loaded]
                rules.setdefault(step.name, []).append(rule)
        return injected, rules

    def _rule(self, step: str, field: str, raw: Any, line: int | None) -> InjectionRule | None:
        if not isinstance(raw, dict):
            self.issue("each rule must be a mapping", step=step, field=field, line=line)
            return None
        data = {k: v for k, v in _strip_lines(raw).items() if k != "steps_to_insert"}
        try:
            rule = InjectionRule.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                self.issue(err["msg"], step=step, line=line,
                           field=f"{field}.{'.'.join(str(p) for p in err['loc'])}")
            return None
        if rule.action.upper() != "INSERT_AFTER_CURRENT":
            # As on Ruvon, only INSERT_AFTER_CURRENT acts: another action is skipped.
            where = DefinitionIssue(self.file, "", step=step, field=f"{field}.action",
                                    line=line)
            log.warning("%s: action '%s' does nothing and the rule is skipped: only "
                        "INSERT_AFTER_CURRENT inserts steps (as on Ruvon)",
                        str(where).rstrip(": "), rule.action)
            return None
        if not ({"value_match", "value_is_not"} & rule.model_fields_set):
            self.issue("a rule needs 'value_match' or 'value_is_not'", step=step,
                       field=field, line=line)
            return None
        if not raw.get("steps_to_insert"):
            self.issue("a rule needs 'steps_to_insert'", step=step,
                       field=f"{field}.steps_to_insert", line=line)
            return None
        return rule

    def _check_output_keys(self, steps: list[StepDefinition], model: type[BaseModel]) -> None:
        """HTTP and FIRE_AND_FORGET results land in ``output_key``: the state must take it."""
        if model.model_config.get("extra") == "allow":
            return
        for step in steps:
            if step.type not in (StepType.HTTP, StepType.FIRE_AND_FORGET):
                continue
            key = step.output_key or ("http_response" if step.type is StepType.HTTP else None)
            if key and key not in model.model_fields:
                self.issue(f"output_key '{key}' is not a field of {model.__name__}: add it to "
                           "the state model (or allow extra fields)", step=step.name,
                           field="output_key")

    def _compile_routes(self, step: StepDefinition, line: int | None) -> None:
        compiled: list[tuple[Expression | None, str]] = []
        for i, route in enumerate(step.routes):
            field = f"routes[{i}]"
            if route.default is not None:
                compiled.append((None, route.default))
                continue
            if route.target and route.next_step and route.target != route.next_step:
                self.issue(f"a route names two targets ('next_step: {route.next_step}', "
                           f"'target: {route.target}'): give one", step=step.name, field=field,
                           line=line)
                continue
            target = route.next_step or route.target
            if not route.condition or not target:
                self.issue("a route needs 'condition' and 'next_step' (or 'target'), or "
                           "'default'", step=step.name, field=field, line=line)
                continue
            try:
                compiled.append((compile_expression(route.condition), target))
            except ConditionError as exc:
                self.issue(f"condition '{route.condition}' is refused: {exc}", step=step.name,
                           field=f"{field}.condition", line=line)
        for field, expr in (("iterate_over", step.iterate_over),
                            ("while_condition", step.while_condition)):
            if expr:
                try:
                    compile_expression(expr)
                except ConditionError as exc:
                    self.issue(f"expression '{expr}' is refused: {exc}", step=step.name,
                               field=field, line=line)
        self.routes[step.name] = compiled

    def _check_references(self, steps: Iterable[StepDefinition], raw_steps: list[Any]) -> None:
        names = {s.get("name") for s in raw_steps if isinstance(s, dict)}
        for step in steps:
            for i, (_, target) in enumerate(self.routes.get(step.name, [])):
                if target not in names:
                    self.issue(f"route target '{target}' names no step", step=step.name,
                               field=f"routes[{i}]", line=None)
            for dep in step.dependencies:
                if dep not in names:
                    self.issue(f"dependency '{dep}' names no step", step=step.name,
                               field="dependencies")
