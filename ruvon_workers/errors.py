"""Every error the engine raises derives from :class:`RuvonError`.

Control-flow signals that a step function raises (jump, pause, sub-workflow) are
directives, not errors: they live in :mod:`ruvon_workers.directives`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class RuvonError(Exception):
    """Base class of every error raised by Ruvon Workers."""


@dataclass
class DefinitionIssue:
    """One problem found in a registry or workflow file."""

    file: str
    message: str
    step: str | None = None
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.step:
            parts.append(f"step '{self.step}'")
        if self.field:
            parts.append(f"field '{self.field}'")
        return f"{', '.join(parts)}: {self.message}"


class DefinitionError(RuvonError):
    """A registry or workflow definition is invalid; carries every issue found."""

    def __init__(self, issues: Sequence[DefinitionIssue]):
        self.issues = list(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"{len(self.issues)} problem(s) in workflow definitions:\n{lines}")


class UnknownWorkflowType(RuvonError):
    def __init__(self, workflow_type: str, known: Sequence[str] = ()):
        self.workflow_type = workflow_type
        hint = f" Known types: {', '.join(sorted(known))}." if known else ""
        super().__init__(f"Unknown workflow type '{workflow_type}'.{hint}")


class WorkflowNotFound(RuvonError):
    def __init__(self, workflow_id: str):
        self.workflow_id = workflow_id
        super().__init__(f"No workflow with id '{workflow_id}'.")


class InvalidStateError(RuvonError, ValueError):
    """Data does not satisfy a workflow's state model (or a step's input model); a
    ``ValueError``, as Ruvon raises for rejected input."""

    def __init__(self, what: str, errors: list[dict] | None = None, detail: str = ""):
        self.what = what
        self.errors = errors or []
        if self.errors:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or '<root>'}: {e.get('msg')}"
                for e in self.errors
            )
        super().__init__(f"{what}: {detail}")

    @classmethod
    def from_validation_error(cls, what: str, exc: object) -> InvalidStateError:
        errors = exc.errors() if hasattr(exc, "errors") else []
        return cls(what, [dict(e) for e in errors], str(exc))


class FieldError(RuvonError):
    """A request the server refuses on one field (HTTP 422), named by its ``loc``
    (``["query", "cursor"]``, ``["body", "from_step"]``)."""

    def __init__(self, loc: list[str | int], message: str, kind: str = "value_error"):
        self.loc = loc
        self.kind = kind
        super().__init__(message)


class InputTooLarge(InvalidStateError):
    """Initial data or input whose JSON encoding is bigger than ``RUVON_MAX_INPUT_BYTES``."""

    retryable = False

    def __init__(self, what: str, size: int, limit: int):
        self.size = size
        self.limit = limit
        super().__init__(what, detail=f"{size} bytes as JSON, more than the limit of {limit} "
                                      "bytes (RUVON_MAX_INPUT_BYTES); pass a reference to "
                                      "large data (an id, a URL) instead")

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.args, self.__dict__))


class StaleStateError(RuvonError):
    """A compare-and-set write lost: the workflow moved on since it was read."""

    def __init__(self, workflow_id: str, expected_version: int, actual_version: int | None = None):
        self.workflow_id = workflow_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        now = "" if actual_version is None else f", it is now at {actual_version}"
        super().__init__(
            f"Workflow '{workflow_id}' was changed by another writer: expected version "
            f"{expected_version}{now}. Reload it and try again."
        )


class UnstorableValue(RuvonError):
    """The database refused a value (e.g. a string PostgreSQL cannot hold); retrying the
    same write cannot succeed."""

    retryable = False

    def __init__(self, operation: str, detail: str, database: str = "PostgreSQL"):
        self.operation = operation
        super().__init__(f"{database} refused a value during {operation}: {detail}")


class InvalidTransition(RuvonError):
    """The requested operation does not fit the workflow's current status."""

    def __init__(self, workflow_id: str, status: str, action: str, hint: str = ""):
        self.workflow_id = workflow_id
        self.status = status
        self.action = action
        super().__init__(
            f"Cannot {action} workflow '{workflow_id}': it is {status}."
            + (f" {hint}" if hint else "")
        )


class StepFailed(RuvonError):
    """A step raised or returned something the engine could not apply."""

    def __init__(self, step: str, message: str):
        self.step = step
        super().__init__(f"Step '{step}' failed: {message}")


class WorkflowFailedException(RuvonError):
    """Raised by a step to fail its workflow now (no retries), or by the engine when a
    workflow ended FAILED.

    Takes a message, or Ruvon's ``(workflow_id, step_name, original_exception)``."""

    def __init__(self, message: str = "workflow failed", step_name: str | None = None,
                 original_exception: BaseException | None = None, *,
                 workflow_id: str | None = None, step: str | None = None):
        if original_exception is not None and step_name is not None and workflow_id is None:
            # Ruvon's positional form: the first argument is the workflow id.
            workflow_id, message = message, f"step '{step_name}' failed: {original_exception}"
        elif original_exception is not None and message == "workflow failed":
            message = f"step '{step_name}' failed: {original_exception}"
        self.workflow_id = workflow_id
        self.step = step or step_name
        self.step_name = self.step
        self.original_exception = original_exception
        super().__init__(message)


class SagaWorkflowException(WorkflowFailedException):
    """The workflow failed and its saga compensation ran (status FAILED_ROLLED_BACK); a
    step raising it rolls its workflow back even without ``saga_enabled``.

    Takes a message, or Ruvon's ``(step_name, original_exception)``."""

    def __init__(self, message: str = "workflow rolled back",
                 original_exception: BaseException | None = None, *,
                 workflow_id: str | None = None, step: str | None = None,
                 step_name: str | None = None, compensated: Sequence[str] = ()):
        self.compensated = list(compensated)
        if original_exception is not None:
            # Ruvon's form: the first argument names the step.
            step_name = step_name or message
            message = f"Saga step '{step_name}' failed: {original_exception}"
        super().__init__(message, workflow_id=workflow_id, step=step or step_name)
        self.original_exception = original_exception


class MergeConflict(StepFailed):
    """Two PARALLEL branches set one key to different values under RAISE_ERROR."""

    def __init__(self, step: str, key: str, first: str, second: str):
        self.key = key
        super().__init__(step, f"merge conflict on '{key}': branches '{first}' and '{second}' "
                               "set different values (merge_conflict_behavior: RAISE_ERROR)")


class WorkerLost(RuvonError):
    """The pool process running a step died under it (e.g. killed for memory)."""


class ConfigurationError(RuvonError):
    """A required setting is missing or malformed."""


class EmbeddedUnavailable(RuvonError):
    """The embedded PostgreSQL or Redis was needed but is not installed."""


class DatabaseError(RuvonError):
    """PostgreSQL could not be reached or refused a query."""


class BadMessage(RuvonError, ValueError):
    """A fleet message the engine refuses as it stands: a kwarg missing or of the wrong
    type, or a step message sent to another step's task."""


class ConditionError(RuvonError, ValueError):
    """An expression is outside the grammar, or cannot be evaluated."""


class HttpRequestFailed(RuvonError):
    """The request got a non-2xx answer, timed out, or could not be sent."""

    def __init__(self, method: str, url: str, *, status_code: int | None = None,
                 body_excerpt: str | None = None, reason: str = "", retryable: bool = False):
        self.method = method
        self.url = url
        self.status_code = status_code
        self.body_excerpt = body_excerpt
        self.reason = reason
        self.retryable = retryable
        if status_code is not None:
            message = f"{method} {url} returned {status_code}: {body_excerpt or ''}"
        else:
            message = f"{method} {url} failed: {reason}"
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.args, self.__dict__))


class HostRefused(RuvonError):
    """An HTTP step may not connect to this host: the allow-list or the refusal of
    non-public addresses (``engine/http_guard.py``). Retrying cannot change that."""

    retryable = False

    def __init__(self, host: str, address: object, reason: str):
        self.host = host
        self.address = None if address is None else str(address)
        self.reason = reason
        at = "" if self.address is None else f" (address {self.address})"
        super().__init__(f"host '{host}'{at} is refused: {reason}")

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.args, self.__dict__))


class TemplateRefused(RuvonError):
    """A template of the step was refused by the sandbox or could not be rendered."""

    retryable = False

    def __init__(self, step: str, field: str, reason: str, *, refused: bool = False):
        self.step = step
        self.field = field
        self.reason = reason
        verdict = "is refused" if refused else "cannot be rendered"
        super().__init__(f"step '{step}': {field} template {verdict}: {reason}")

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[RuvonError], args: tuple[Any, ...], fields: dict[str, Any]) -> RuvonError:
    # The constructors take fields, not the message, so pickle's default cls(*args) fails.
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(fields)
    return exc
