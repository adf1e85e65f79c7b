"""The HTTP step type against a real local HTTP server."""

from __future__ import annotations

import json
import logging
import pickle
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ruvon_workers.definitions.models import RetryPolicy, StepDefinition
from ruvon_workers.engine.http import (
    HttpRequestFailed,
    TemplateRefused,
    check_http_config,
    effective_retry_policy,
    run_http_step,
)

SECRET = "tok-9f8e7d6c"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeServer:
    """Records every request and answers with the configured status, body and delay."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    body: bytes = b'{"ok": true}'
    content_type: str = "application/json"
    delay: float = 0.0
    echo_path: bool = False
    location: str | None = None

    def reply(self, status: int = 200, body: str | bytes = b"", *,
              content_type: str = "application/json", delay: float = 0.0,
              echo_path: bool = False, location: str | None = None) -> None:
        self.status, self.content_type, self.delay = status, content_type, delay
        self.body = body.encode() if isinstance(body, str) else body
        self.echo_path, self.location = echo_path, location


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            server.requests.append(Received(
                self.command, parts.path, parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)))
            time.sleep(server.delay)
            body = server.body + (self.path.encode() if server.echo_path else b"")
            try:
                moved = parts.path.startswith("/moved")  # a redirect's target answers 200
                self.send_response(200 if moved and server.location else server.status)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(body)))
                if server.location and not moved:
                    self.send_header("Location", server.location)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _serve() -> Iterator[FakeServer]:
    fake = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    yield from _serve()


@pytest.fixture
def elsewhere() -> Iterator[FakeServer]:
    """A second server: another origin (another port)."""
    yield from _serve()


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RUVON_SECRET_API_TOKEN", SECRET)
    return SECRET


def http_step(http_config: dict[str, Any], **fields: Any) -> StepDefinition:
    return StepDefinition.model_validate(
        {"name": "Call_API", "type": "HTTP", "http_config": http_config, **fields})


async def run(step: StepDefinition, state: dict[str, Any] | None = None,
              **kwargs: Any) -> dict[str, Any]:
    return await run_http_step(step, state or {}, workflow_id="wf-1", **kwargs)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- requests ------------------------------------------------------------------------------

async def test_get_renders_url_query_and_headers(server: FakeServer) -> None:
    step = http_step({
        "url": server.url + "/customers/{{ state.customer.id }}",
        "query_params": {"region": "{{ state.region | upper }}", "limit": 5},
        "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}",
                    "X-Workflow": "{{ workflow_id }}", "X-Other": "{{ secrets['API_TOKEN'] }}"},
    })
    result = await run(step, {"customer": {"id": 42}, "region": "eu"}, idempotency_key="k-1")
    assert result == {"http_response": {"status_code": 200, "body": {"ok": True}}}
    [req] = server.requests
    assert (req.method, req.path) == ("GET", "/customers/42")
    assert req.query == {"region": ["EU"], "limit": ["5"]}
    assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert req.headers["x-other"] == SECRET
    assert req.headers["x-workflow"] == "wf-1"
    assert req.headers["idempotency-key"] == "k-1"


async def test_post_json_body_keeps_native_types(server: FakeServer) -> None:
    step = http_step({
        "method": "post",
        "url": server.url + "/orders",
        "body": {"total": "{{ state.total }}", "items": "{{ state['items'] }}",
                 "note": "order {{ state.total }}", "lines": ["{{ state.total * 2 }}", 7],
                 "flag": True},
    })
    await run(step, {"total": 12.5, "items": [{"sku": "a"}]})
    [req] = server.requests
    assert req.method == "POST" and req.headers["content-type"] == "application/json"
    assert json.loads(req.body) == {"total": 12.5, "items": [{"sku": "a"}],
                                    "note": "order 12.5", "lines": [25.0, 7], "flag": True}


async def test_string_body_is_sent_as_is(server: FakeServer) -> None:
    step = http_step({"method": "PUT", "url": server.url + "/raw",
                      "headers": {"Content-Type": "text/plain"},
                      "body": "hello {{ state.name }}"})
    await run(step, {"name": "ann"})
    [req] = server.requests
    assert req.body == b"hello ann" and req.headers["content-type"] == "text/plain"


async def test_explicit_idempotency_header_wins(server: FakeServer) -> None:
    step = http_step({"url": server.url, "headers": {"idempotency-key": "mine"}})
    await run(step, idempotency_key="engine")
    assert server.requests[0].headers["idempotency-key"] == "mine"


# --- responses -----------------------------------------------------------------------------

async def test_json_response_with_includes(server: FakeServer) -> None:
    server.reply(201, '{"id": 7, "tags": ["x"]}', content_type="application/json; charset=utf-8")
    step = http_step({"method": "POST", "url": server.url, "body": {"a": 1}},
                     output_key="created", includes=["status_code", "headers", "body",
                                                     "elapsed_ms"])
    result = await run(step)
    info = result["created"]
    assert list(result) == ["created"]
    assert info["status_code"] == 201 and info["body"] == {"id": 7, "tags": ["x"]}
    assert info["headers"]["content-type"] == "application/json; charset=utf-8"
    assert isinstance(info["elapsed_ms"], float) and info["elapsed_ms"] >= 0
    json.dumps(result)  # mergeable into a JSON state


async def test_text_response(server: FakeServer) -> None:
    server.reply(200, "plain words", content_type="text/plain")
    result = await run(http_step({"url": server.url}, includes=None))
    assert result == {"http_response": {"status_code": 200, "body": "plain words"}}


async def test_json_without_json_content_type_is_parsed(server: FakeServer) -> None:
    server.reply(200, '[1, 2]', content_type="text/plain")
    result = await run(http_step({"url": server.url}, includes=["body"]))
    assert result == {"http_response": {"body": [1, 2]}}


@pytest.mark.parametrize(("status", "retryable"),
                         [(503, True), (500, True), (429, True), (408, True), (404, False),
                          (400, False)])
async def test_non_2xx_fails(server: FakeServer, status: int, retryable: bool) -> None:
    server.reply(status, "x" * 600 + "tail", content_type="text/plain")
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"method": "POST", "url": server.url + "/path?q=1"}))
    exc = info.value
    assert exc.status_code == status and exc.retryable is retryable
    assert exc.body_excerpt == "x" * 500
    assert str(exc) == f"POST {server.url}/path returned {status}: {'x' * 500}"
    assert exc.__cause__ is None and exc.__suppress_context__


async def test_timeout_is_retryable(server: FakeServer) -> None:
    server.reply(200, "{}", delay=0.5)
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"url": server.url + "/slow", "timeout": 0.1}))
    exc = info.value
    assert exc.retryable and exc.status_code is None
    assert str(exc).startswith(f"GET {server.url}/slow failed: timed out after 0.1s")


async def test_connection_error_is_retryable() -> None:
    url = closed_port_url()
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"url": url + "/x", "timeout": 2}))
    assert info.value.retryable and info.value.status_code is None
    assert str(info.value).startswith(f"GET {url}/x failed: ConnectError")


def test_errors_survive_pickling() -> None:
    exc = HttpRequestFailed("GET", "http://h/p", status_code=503, body_excerpt="busy",
                            retryable=True)
    copy = pickle.loads(pickle.dumps(exc))
    assert (str(copy), copy.status_code, copy.retryable) == (str(exc), 503, True)
    refused = pickle.loads(pickle.dumps(TemplateRefused("S", "http_config.url", "why")))
    assert str(refused) == "step 'S': http_config.url template cannot be rendered: why"


# --- secrets -------------------------------------------------------------------------------

def assert_secret_hidden(exc: BaseException) -> None:
    formatted = "".join(traceback.format_exception(exc))
    assert SECRET not in str(exc) and SECRET not in formatted
    assert SECRET not in repr(exc.__dict__)


async def test_secret_hidden_when_server_rejects(server: FakeServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.reply(500, "you sent ", content_type="text/plain", echo_path=True)
    step = http_step({"url": server.url + "/v1/{{ secrets.API_TOKEN }}/items",
                      "query_params": {"key": "{{ secrets.API_TOKEN }}"}})
    with pytest.raises(HttpRequestFailed) as info:
        await run(step)
    assert server.requests[0].path == f"/v1/{SECRET}/items"
    assert str(info.value) == (f"GET {server.url}/v1/***/items returned 500: "
                               "you sent /v1/***/items?key=***")
    assert_secret_hidden(info.value)
    assert SECRET not in caplog.text


async def test_secret_hidden_when_connection_fails(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = "{{ secrets.API_TOKEN }}"
    step = http_step({"url": f"{closed_port_url()}/{token}?t={token}"})
    with pytest.raises(HttpRequestFailed) as info:
        await run(step)
    assert "/***" in str(info.value)
    assert_secret_hidden(info.value)
    assert SECRET not in caplog.text


async def test_secret_hidden_in_template_errors() -> None:
    step = http_step({"url": "http://h/{{ state[secrets.API_TOKEN] }}"})
    with pytest.raises(TemplateRefused) as info:
        await run(step)
    assert "***" in str(info.value)
    assert_secret_hidden(info.value)


async def test_missing_secret_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUVON_SECRET_API_TOKEN")
    step = http_step({"url": "http://h/", "headers": {"Authorization": "{{ secrets.API_TOKEN }}"}})
    with pytest.raises(TemplateRefused) as info:
        await run(step)
    assert str(info.value) == (
        "step 'Call_API': http_config.headers.Authorization template cannot be rendered: "
        "secret 'API_TOKEN' is not set: set the environment variable RUVON_SECRET_API_TOKEN")
    assert info.value.retryable is False


# --- the sandbox ---------------------------------------------------------------------------

ESCAPES = [
    "{{ state.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ '{0.__class__}'.format(state) }}",
    "{{ secrets._used }}",
    "{{ state.data.update({'x': 1}) }}",
]


@pytest.mark.parametrize("template", ESCAPES)
@pytest.mark.parametrize("where", ["url", "body"])
async def test_sandbox_escapes_are_refused(server: FakeServer, template: str, where: str) -> None:
    config = ({"url": server.url + "/" + template} if where == "url"
              else {"method": "POST", "url": server.url, "body": {"x": template}})
    with pytest.raises(TemplateRefused) as info:
        await run(http_step(config), {"data": {}})
    field_name = "http_config.url" if where == "url" else "http_config.body.x"
    assert str(info.value).startswith(f"step 'Call_API': {field_name} template is refused: ")
    assert "unsafe" in str(info.value)
    assert server.requests == []


async def test_undefined_variable_is_refused(server: FakeServer) -> None:
    step = http_step({"method": "POST", "url": server.url, "body": {"x": "{{ state.nope }}"}})
    with pytest.raises(TemplateRefused, match=r"http_config\.body\.x .*'nope'"):
        await run(step)
    assert server.requests == []


# --- load-time checks ----------------------------------------------------------------------

def test_check_accepts_a_good_config() -> None:
    step = http_step({"method": "patch", "url": "https://h/{{ state.id }}", "timeout": 5,
                      "headers": {"A": "{{ secrets.X }}"}, "query_params": {"q": 1},
                      "body": {"a": ["{{ state.x }}"]},
                      "retry_policy": {"max_attempts": 3}},
                     includes=["status_code", "elapsed_ms"])
    assert check_http_config(step) == []


def test_check_reports_each_problem() -> None:
    step = http_step({"method": "FETCH", "timeout": 0,
                      "headers": {"Authorization": "Bearer {{ secrets.X "},
                      "query_params": {"q": "{% if %}"},
                      "body": {"items": [{"sku": "{{ state.sku }"}]},
                      "retry_policy": {"max_attempts": 0}},
                     includes=["body", "cookies"])
    fields = [f for f, _ in check_http_config(step)]
    assert sorted(fields) == sorted([
        "http_config.url", "http_config.method", "http_config.timeout",
        "http_config.retry_policy", "includes", "http_config.headers.Authorization",
        "http_config.query_params.q", "http_config.body.items[0].sku"])
    messages = dict(check_http_config(step))
    assert "'FETCH'" in messages["http_config.method"]
    assert "'cookies'" in messages["includes"]
    assert "template does not parse" in messages["http_config.headers.Authorization"]
    assert "max_attempts" in messages["http_config.retry_policy"]


def test_check_requires_http_config() -> None:
    step = StepDefinition.model_validate({"name": "Call_API", "type": "HTTP"})
    assert [f for f, _ in check_http_config(step)] == ["http_config"]


def test_effective_retry_policy() -> None:
    assert effective_retry_policy(http_step({"url": "http://h"})) is None
    from_config = effective_retry_policy(
        http_step({"url": "http://h", "retry_policy": {"max_attempts": 4, "jitter": False}}))
    assert from_config == RetryPolicy(max_attempts=4, jitter=False)
    own = effective_retry_policy(http_step(
        {"url": "http://h", "retry_policy": {"max_attempts": 4}},
        retry_policy={"max_attempts": 9}))
    assert own is not None and own.max_attempts == 9


async def test_a_response_over_max_response_bytes_fails_without_being_stored(
        server: FakeServer) -> None:
    server.reply(200, b"x" * 5000, content_type="text/plain")
    step = http_step({"url": server.url + "/export", "max_response_bytes": 4096})
    with pytest.raises(HttpRequestFailed, match=r"larger than max_response_bytes \(4096\)") as err:
        await run(step)
    assert err.value.retryable is False
    within = http_step({"url": server.url + "/export", "max_response_bytes": 5000})
    assert (await run(within))["http_response"]["body"] == "x" * 5000
    assert check_http_config(http_step({"url": "http://h", "max_response_bytes": "big"})) == [
        ("http_config.max_response_bytes",
         "max_response_bytes must be a positive whole number, not 'big'")]


# --- redirects -----------------------------------------------------------------------------

SECRET_HEADERS = {"X-Api-Key": "{{ secrets.API_TOKEN }}", "X-Plain": "hello"}


async def test_a_redirect_on_the_same_origin_keeps_every_header(server: FakeServer) -> None:
    server.reply(302, location="/moved")
    await run(http_step({"url": server.url + "/old", "headers": SECRET_HEADERS}))
    assert [r.path for r in server.requests] == ["/old", "/moved"]
    assert server.requests[1].headers["x-api-key"] == SECRET


async def test_a_redirect_to_another_origin_drops_headers_carrying_secrets(
        server: FakeServer, elsewhere: FakeServer) -> None:
    server.reply(302, location=elsewhere.url + "/moved")
    out = await run(http_step({"url": server.url + "/old", "headers": SECRET_HEADERS}))
    assert out["http_response"]["status_code"] == 200
    (moved,) = elsewhere.requests
    assert "x-api-key" not in moved.headers and moved.headers["x-plain"] == "hello"


async def test_a_secret_in_the_body_is_not_resent_to_another_origin(
        server: FakeServer, elsewhere: FakeServer) -> None:
    server.reply(307, location=elsewhere.url + "/moved")
    step = http_step({"method": "POST", "url": server.url + "/old",
                      "body": {"token": "{{ secrets.API_TOKEN }}"}})
    with pytest.raises(HttpRequestFailed) as info:
        await run(step)
    assert info.value.status_code == 307 and not info.value.retryable
    assert elsewhere.requests == []


async def test_follow_redirects_false_fails_on_a_redirect(server: FakeServer) -> None:
    server.reply(301, location="/moved")
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"url": server.url + "/old", "follow_redirects": False}))
    assert info.value.status_code == 301
    assert [r.path for r in server.requests] == ["/old"]


async def test_a_secret_in_a_malformed_url_stays_hidden() -> None:
    # httpx quotes the bad part of a URL (here, a port made of the secret's tail)
    step = http_step({"url": "http://127.0.0.1:{{ secrets.API_TOKEN[4:] }}/"})
    with pytest.raises(HttpRequestFailed) as info:
        await run(step)
    assert "not valid" in str(info.value) and not info.value.retryable
    assert SECRET[4:] not in str(info.value)
    assert_secret_hidden(info.value)
