"""The HTTP step type: render the request from templates, send it, shape the response.

httpx is imported when a request is sent: loading a registry that has HTTP steps (checking
their configs, computing their retry policies) does not import it.

Templates are Jinja2 in an immutable sandbox with ``state``, ``secrets`` and
``workflow_id`` in scope. Secret values never leave this module in an error message:
every value read while rendering is replaced by ``***``.

Where a request may connect is :mod:`.http_guard`'s rule, applied to every connection
(the first and each redirect hop) by :mod:`.http_transport`. The step's ``timeout`` is a
deadline for the whole request. On a redirect to another origin only the headers named in
``forward_headers`` go along (:class:`_OwnHeaders`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError

from ..definitions.models import RetryPolicy, StepDefinition

# HttpRequestFailed and TemplateRefused, the errors an HTTP step raises, are re-exported:
# callers catch them from this module too.
from ..errors import HostRefused
from ..errors import HttpRequestFailed as HttpRequestFailed
from ..errors import TemplateRefused as TemplateRefused
from .http_guard import AllowList, HostGuard

if TYPE_CHECKING:
    import httpx

# httpx logs every request URL at INFO (httpcore at DEBUG); URLs may carry secrets.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_INCLUDES = ("status_code", "body")
DEFAULT_OUTPUT_KEY = "http_response"
DEFAULT_TIMEOUT = 30.0
SECRET_ENV_PREFIX = "RUVON_SECRET_"
RETRYABLE_STATUS = frozenset({408, 425, 429})
EXCERPT_CHARS = 500
#: A bigger response fails the step instead of landing in the state (``max_response_bytes``).
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
#: Never sent to another origin than the step's own, whatever ``forward_headers`` says.
NEVER_FORWARDED = frozenset({"authorization", "proxy-authorization", "cookie"})
#: Headers about the body: they go on a redirect hop only when the body does.
BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                     keep_trailing_newline=True)


# --- load-time checks ----------------------------------------------------------------------

def check_http_config(step: StepDefinition) -> list[tuple[str, str]]:
    """Problems in an HTTP step's definition, as ``(field, message)`` pairs."""
    config = step.http_config
    if not isinstance(config, dict):
        return [("http_config", "an HTTP step needs http_config with at least a url")]
    issues: list[tuple[str, str]] = []
    if not isinstance(config.get("url"), str) or not config["url"].strip():
        issues.append(("http_config.url", "url is required (for example https://host/path)"))
    method = config.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        issues.append(("http_config.method",
                       f"method {method!r} is not one of {', '.join(sorted(METHODS))}"))
    timeout = config.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        issues.append(("http_config.timeout",
                       f"timeout must be a positive number of seconds, not {timeout!r}"))
    if config.get("retry_policy") is not None:
        try:
            RetryPolicy.model_validate(config["retry_policy"])
        except ValidationError as exc:
            issues.append(("http_config.retry_policy", _validation_summary(exc)))
    unknown = [name for name in step.includes if name not in _RESPONSE_FIELDS]
    if unknown:
        issues.append(("includes", f"unknown entries {unknown}; allowed: "
                                   f"{', '.join(_RESPONSE_FIELDS)}"))
    for field, source in _templates(config):
        try:
            _ENV.parse(source)
        except TemplateSyntaxError as exc:
            issues.append((field, f"template does not parse: {exc.message} (line {exc.lineno})"))
    limit = config.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        issues.append(("http_config.max_response_bytes",
                       f"max_response_bytes must be a positive whole number, not {limit!r}"))
    for key in ("headers", "query_params"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            issues.append((f"http_config.{key}", f"{key} must be a mapping of name: value"))
    issues.extend(_check_host_lists(config))
    if not isinstance(config.get("follow_redirects", True), bool):
        issues.append(("http_config.follow_redirects",
                       f"follow_redirects must be true or false, not "
                       f"{config['follow_redirects']!r}"))
    return issues


def _check_host_lists(config: dict[str, Any]) -> list[tuple[str, str]]:
    """``allowed_hosts`` and ``forward_headers``: lists of names, each one usable."""
    issues: list[tuple[str, str]] = []
    lists: dict[str, list[str]] = {}
    for key in ("allowed_hosts", "forward_headers"):
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            lists[key] = value
        else:
            issues.append((f"http_config.{key}", f"{key} must be a list of names, "
                                                 f"not {value!r}"))
    if "allowed_hosts" in lists:
        try:
            AllowList.parse(lists["allowed_hosts"])
        except ValueError as exc:
            issues.append(("http_config.allowed_hosts", str(exc)))
    never = sorted({name.lower() for name in lists.get("forward_headers", ())}
                   & NEVER_FORWARDED)
    if never:
        issues.append(("http_config.forward_headers",
                       f"{', '.join(never)}: never sent to another origin; remove from "
                       "forward_headers"))
    return issues


def effective_retry_policy(step: StepDefinition) -> RetryPolicy | None:
    """The step's own retry policy, else the one in ``http_config``, else None."""
    if step.retry_policy is not None:
        return step.retry_policy
    raw = (step.http_config or {}).get("retry_policy")
    return None if raw is None else RetryPolicy.model_validate(raw)


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                     for e in exc.errors())


def _templates(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every template string of a config, with the field it sits in."""
    if isinstance(config.get("url"), str):
        yield "http_config.url", config["url"]
    for key in ("headers", "query_params"):
        mapping = config.get(key)
        if isinstance(mapping, dict):
            for name, value in mapping.items():
                if isinstance(value, str):
                    yield f"http_config.{key}.{name}", value
    yield from _leaves("http_config.body", config.get("body"))


def _leaves(field: str, value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(f"{field}.{key}", item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(f"{field}[{i}]", item)


# --- rendering -----------------------------------------------------------------------------

class _MissingSecret(Exception):
    pass


class _Secrets:
    """``secrets.NAME`` / ``secrets['NAME']`` read ``RUVON_SECRET_NAME``; values read are kept
    so they can be redacted. Not iterable: a template can only read secrets it names."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError("secrets are read by name: secrets.NAME or secrets['NAME']")
        env_var = f"{SECRET_ENV_PREFIX}{name}"
        value = os.environ.get(env_var)
        if value is None:
            raise _MissingSecret(f"secret '{name}' is not set: set the environment variable "
                                 f"{env_var}")
        self._used.add(value)
        return value

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __repr__(self) -> str:
        return "<secrets>"

    def redact(self, text: str) -> str:
        """``text`` with every secret read so far (raw, URL- or JSON-encoded) as ``***``."""
        forms = {form for value in self._used if value
                 for form in (value, quote(value, safe=""), quote(value), quote_plus(value),
                              json.dumps(value)[1:-1])}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "***")
        return text


class _Renderer:
    """Renders one step's templates against one state."""

    def __init__(self, step: str, state: dict[str, Any], workflow_id: str) -> None:
        self.step = step
        self.secrets = _Secrets()
        self.context = {"state": state, "secrets": self.secrets, "workflow_id": workflow_id}

    @contextmanager
    def _guard(self, field: str) -> Iterator[None]:
        try:
            yield
        except SecurityError as exc:
            reason = self.secrets.redact(str(exc))
            raise TemplateRefused(self.step, field, reason, refused=True) from None
        except (_MissingSecret, TemplateError) as exc:
            raise TemplateRefused(self.step, field, self.secrets.redact(str(exc))) from None
        except Exception as exc:  # anything a template expression can raise
            reason = self.secrets.redact(f"{type(exc).__name__}: {exc}")
            raise TemplateRefused(self.step, field, reason) from None

    def text(self, field: str, source: object) -> str:
        if not isinstance(source, str):
            return str(source)
        with self._guard(field):
            return _template(source).render(self.context)

    def body(self, field: str, value: object) -> object:
        """Render leaf by leaf; a leaf that is one ``{{ expr }}`` keeps the value's type."""
        if isinstance(value, dict):
            return {key: self.body(f"{field}.{key}", item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.body(f"{field}[{i}]", item) for i, item in enumerate(value)]
        if not isinstance(value, str):
            return value
        with self._guard(field):
            expression = _single_expression(value)
            if expression is None:
                return _template(value).render(self.context)
            value = _expression(expression)(**self.context)
            if isinstance(value, Undefined):
                str(value)  # a StrictUndefined raises the error it stands for
            return value

    def encode_json(self, body: object) -> bytes:
        """The rendered body as JSON; values JSON cannot carry are refused here."""
        with self._guard("http_config.body"):
            return json.dumps(body, default=_not_json, allow_nan=False, ensure_ascii=False,
                              separators=(",", ":")).encode()


@lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=1024)
def _expression(source: str) -> TemplateExpression:
    return _ENV.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=1024)
def _single_expression(source: str) -> str | None:
    """The expression of a template that is exactly one ``{{ expr }}``, else None."""
    text = source.strip()
    if not (text.startswith("{{") and text.endswith("}}")):
        return None
    body = _ENV.parse(text).body
    if not (len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1
            and not isinstance(body[0].nodes[0], nodes.TemplateData)):
        return None
    inner = text[2:-2]
    # "{{-" and "-}}" are whitespace control, not part of the expression.
    inner = inner[1:] if inner[:1] in ("-", "+") else inner
    return inner[:-1] if inner[-1:] in ("-", "+") else inner


def _not_json(value: object) -> NoReturn:
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises the error it stands for
    raise TypeError(f"a {type(value).__name__} value cannot be sent as JSON")


# --- the request ---------------------------------------------------------------------------

_RESPONSE_FIELDS: dict[str, Callable[[httpx.Response], object]] = {
    "status_code": lambda r: r.status_code,
    "headers": lambda r: dict(r.headers),
    "body": lambda r: _parse_body(r.text),
    "elapsed_ms": lambda r: round(r.elapsed.total_seconds() * 1000, 3),
}


async def run_http_step(step: StepDefinition, state: dict[str, Any], *, workflow_id: str,
                        idempotency_key: str | None = None) -> dict[str, Any]:
    """Send the step's request; return ``{output_key: response_info}`` to merge into state.

    Raises :class:`TemplateRefused` (never retryable) or :class:`HttpRequestFailed`.
    """
    import httpx

    from .http_transport import GuardedTransport

    config = step.http_config or {}
    renderer = _Renderer(step.name, state, workflow_id)
    method = str(config.get("method", "GET")).upper()
    url = renderer.text("http_config.url", config.get("url", ""))
    headers = httpx.Headers({name: renderer.text(f"http_config.headers.{name}", value)
                             for name, value in (config.get("headers") or {}).items()})
    params = {name: renderer.text(f"http_config.query_params.{name}", value)
              if isinstance(value, str) else value
              for name, value in (config.get("query_params") or {}).items()}
    body = renderer.body("http_config.body", config.get("body"))
    own = _OwnHeaders(headers, config.get("forward_headers") or (), renderer.secrets)
    if idempotency_key and "idempotency-key" not in headers:
        headers["Idempotency-Key"] = idempotency_key
    content: bytes | None = None
    if isinstance(body, str):
        content = body.encode()
    elif body is not None:
        content = renderer.encode_json(body)
        headers.setdefault("Content-Type", "application/json")

    shown_url = renderer.secrets.redact(_display_url(url))
    timeout = float(config.get("timeout", DEFAULT_TIMEOUT))
    limit = int(config.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES))
    try:
        guard = HostGuard.for_step(config.get("allowed_hosts"))
    except ValueError as exc:
        raise HttpRequestFailed(method, shown_url, reason=str(exc), retryable=False) from None
    try:
        # The deadline is the step's timeout for the whole request: every hop, every
        # read. httpx's own timeout bounds each connect and read, which a server sending
        # a byte now and then would never trip.
        async with asyncio.timeout(timeout), httpx.AsyncClient(
                timeout=timeout, follow_redirects=False,
                transport=GuardedTransport(guard)) as client:
            request = client.build_request(method, url, headers=headers, params=params,
                                           content=content)
            response = await _send_following(client, request, own, shown_url,
                                             follow=bool(config.get("follow_redirects", True)))
            try:
                await _read_at_most(response, limit, method, shown_url)
            finally:
                await response.aclose()
    except TimeoutError:
        raise HttpRequestFailed(method, shown_url, retryable=True,
                                reason=f"timed out after {timeout:g}s (the step's timeout "
                                       "bounds the whole request)") from None
    except HostRefused as exc:
        raise HttpRequestFailed(method, shown_url, reason=renderer.secrets.redact(str(exc)),
                                retryable=False) from None
    except httpx.InvalidURL:
        # The rendered URL (and httpx's message quoting its bad part) may hold a piece of
        # a secret: name the template instead.
        raise HttpRequestFailed(method, str(config.get("url")),
                                reason="the URL it renders to is not valid",
                                retryable=False) from None
    except httpx.HTTPError as exc:
        reason = renderer.secrets.redact(_kind(exc, timeout))
        raise HttpRequestFailed(method, shown_url, reason=reason,
                                retryable=_transient(exc)) from None
    if not response.is_success:
        code = response.status_code
        raise HttpRequestFailed(
            method, shown_url, status_code=code,
            body_excerpt=renderer.secrets.redact(response.text)[:EXCERPT_CHARS],
            retryable=code >= 500 or code in RETRYABLE_STATUS) from None
    includes = step.includes or DEFAULT_INCLUDES
    info = {name: _RESPONSE_FIELDS[name](response) for name in includes
            if name in _RESPONSE_FIELDS}
    return {step.output_key or DEFAULT_OUTPUT_KEY: info}


class _OwnHeaders:
    """The headers the step sets itself, and which of them may go to another origin: those
    ``forward_headers`` names, unless they carry a secret (never ``NEVER_FORWARDED``)."""

    def __init__(self, headers: httpx.Headers, forward: Iterable[str], secrets: _Secrets) -> None:
        # Host is httpx's to set on a hop to another origin.
        self.items = [(name, value) for name, value in headers.multi_items()
                      if name.lower() != "host"]
        self.forward = {name.lower() for name in forward} - NEVER_FORWARDED
        self.secrets = secrets

    def crossing(self, name: str, value: str) -> bool:
        return name.lower() in self.forward and self.secrets.redact(value) == value

    def apply(self, hop: httpx.Request, *, home: bool, with_body: bool) -> None:
        """Set the step's headers on a redirect hop: all of them on the step's own origin
        (``home``), the forwarded ones elsewhere; body headers only if the body goes too."""
        import httpx

        mine = {name.lower() for name, _ in self.items}
        dropped = mine if home else mine | NEVER_FORWARDED
        kept = [(name, value) for name, value in hop.headers.multi_items()
                if name.lower() not in dropped]
        kept += [(name, value) for name, value in self.items
                 if (home or self.crossing(name, value))
                 and (with_body or name.lower() not in BODY_HEADERS)]
        hop.headers = httpx.Headers(kept)


async def _send_following(client: httpx.AsyncClient, request: httpx.Request,
                          own: _OwnHeaders, shown_url: str, *, follow: bool) -> httpx.Response:
    """Send ``request``, following up to ``MAX_REDIRECTS`` redirects when ``follow``. Each
    hop's connection is checked by the transport's guard like the first one."""
    import httpx

    home = _origin(request.url)
    sent = request
    response = await client.send(request, stream=True)
    for hop in range(MAX_REDIRECTS + 1 if follow else 0):
        following = response.next_request
        if following is None:
            break
        if hop == MAX_REDIRECTS:
            await response.aclose()
            raise HttpRequestFailed(request.method, shown_url, retryable=False,
                                    reason=f"more than {MAX_REDIRECTS} redirects")
        at_home = _origin(following.url) == home
        with_body = following.method == sent.method  # 307/308; others become a GET
        if not at_home and with_body:
            try:
                body = sent.content.decode("utf-8", "replace")
            except httpx.RequestNotRead:
                body = ""
            if own.secrets.redact(body) != body:
                break  # a 307/308 would send a secret in the body elsewhere: stop here
        own.apply(following, home=at_home, with_body=with_body)
        await response.aclose()
        sent = following
        response = await client.send(following, stream=True)
    return response


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


async def _read_at_most(response: httpx.Response, limit: int, method: str, url: str) -> None:
    """Read the body, refusing one over ``limit`` bytes before it is all in memory."""
    size, chunks = 0, []
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise HttpRequestFailed(
                method, url, retryable=False,
                reason=f"the response ({response.status_code}) is larger than "
                       f"max_response_bytes ({limit}); raise http_config.max_response_bytes "
                       "or ask the service for less")
        chunks.append(chunk)
    response._content = b"".join(chunks)  # what httpx's own aread() stores


def _display_url(url: str) -> str:
    """The URL without credentials, query string or fragment, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _kind(exc: Exception, timeout: float) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g}s ({type(exc).__name__})"
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _transient(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError
                      | httpx.RemoteProtocolError | httpx.ProxyError)


def _parse_body(text: str) -> object:
    """JSON when the text is JSON (NaN/Infinity are not), else the text itself."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
