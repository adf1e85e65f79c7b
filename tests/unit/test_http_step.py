"""The HTTP step type against a real local HTTP server."""

from __future__ import annotations

import asyncio
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
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ruvon_workers import WorkflowFailedException
from ruvon_workers.definitions.loader import load_registry
from ruvon_workers.definitions.models import RetryPolicy, StepDefinition
from ruvon_workers.engine.http import (
    HttpRequestFailed,
    TemplateRefused,
    check_http_config,
    effective_retry_policy,
    run_http_step,
)
from ruvon_workers.errors import DefinitionError
from ruvon_workers.persistence import MemoryPersistenceProvider

from ..helpers import builder_for, create_in_process, workflow_yaml, write_registry

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
def local_servers_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers here are on 127.0.0.1, which the default rule refuses."""
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "127.0.0.1")


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
    headers = {**SECRET_HEADERS, "Authorization": "Bearer literal", "Cookie": "session=abc"}
    await run(http_step({"url": server.url + "/old", "headers": headers}))
    assert [r.path for r in server.requests] == ["/old", "/moved"]
    moved = server.requests[1].headers
    assert moved["x-api-key"] == SECRET and moved["x-plain"] == "hello"
    assert moved["authorization"] == "Bearer literal" and moved["cookie"] == "session=abc"


async def test_a_redirect_to_another_origin_sends_only_the_forwarded_headers(
        server: FakeServer, elsewhere: FakeServer) -> None:
    server.reply(302, location=elsewhere.url + "/moved")
    headers = {**SECRET_HEADERS, "Authorization": "Bearer literal-token",
               "Proxy-Authorization": "Basic cHJveHk=", "Cookie": "session=abc",
               "X-Trace": "t-1"}
    out = await run(http_step({"url": server.url + "/old", "headers": headers,
                               "forward_headers": ["X-Plain", "x-api-key",
                                                   "Proxy-Authorization"]}))
    assert out["http_response"]["status_code"] == 200
    assert server.requests[0].headers["authorization"] == "Bearer literal-token"
    (moved,) = elsewhere.requests
    # X-Plain is forwarded; X-Api-Key is named but carries a secret; the rest is not named.
    assert moved.headers["x-plain"] == "hello"
    for name in ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-trace"):
        assert name not in moved.headers


async def test_without_forward_headers_no_header_of_the_step_crosses_origins(
        server: FakeServer, elsewhere: FakeServer) -> None:
    server.reply(302, location=elsewhere.url + "/moved")
    await run(http_step({"url": server.url + "/old",
                         "headers": {"Authorization": "Bearer literal", "X-Plain": "hello"}}),
              idempotency_key="k-1")
    (moved,) = elsewhere.requests
    assert "authorization" not in moved.headers and "x-plain" not in moved.headers
    assert moved.headers["idempotency-key"] == "k-1"  # the engine's header goes along


async def test_a_redirect_back_to_the_steps_origin_gets_its_headers_again(
        server: FakeServer, elsewhere: FakeServer) -> None:
    server.reply(302, location=elsewhere.url + "/bounce")
    elsewhere.reply(302, location=server.url + "/moved")
    await run(http_step({"url": server.url + "/old",
                         "headers": {"Authorization": "Bearer literal"}}))
    assert "authorization" not in elsewhere.requests[0].headers
    assert [r.path for r in server.requests] == ["/old", "/moved"]
    assert server.requests[1].headers["authorization"] == "Bearer literal"


async def test_more_than_five_redirects_fail_the_step(server: FakeServer) -> None:
    server.reply(302, location="/again")
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"url": server.url + "/old"}))
    assert str(info.value) == f"GET {server.url}/old failed: more than 5 redirects"
    assert not info.value.retryable and len(server.requests) == 6


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


# --- where a step may connect --------------------------------------------------------------

async def test_a_state_value_pointing_at_the_metadata_address_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUVON_HTTP_ALLOWED_HOSTS")
    step = http_step({"url": "http://{{ state.host }}/latest/meta-data/", "timeout": 5},
                     retry_policy={"max_attempts": 3})
    with pytest.raises(HttpRequestFailed) as info:
        await run(step, {"host": "169.254.169.254"})
    assert str(info.value) == (
        "GET http://169.254.169.254/latest/meta-data/ failed: host '169.254.169.254' "
        "(address 169.254.169.254) is refused: link-local addresses are refused by default; "
        "list the host in RUVON_HTTP_ALLOWED_HOSTS to allow it")
    assert info.value.retryable is False
    # With an allow-list, only what it lists may be reached.
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "127.0.0.1, *.example.com")
    with pytest.raises(HttpRequestFailed, match=r"\(address 169\.254\.169\.254\) is refused: "
                       r"it is not in RUVON_HTTP_ALLOWED_HOSTS; add it there to allow it"):
        await run(step, {"host": "169.254.169.254"})


async def test_a_name_is_checked_by_the_addresses_it_resolves_to(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUVON_HTTP_ALLOWED_HOSTS")
    port = server.url.rsplit(":", 1)[1]
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"url": f"http://localhost:{port}/x"}))
    message = str(info.value)
    assert "host 'localhost' (address " in message
    assert "loopback addresses are refused by default" in message
    assert not info.value.retryable and server.requests == []


@pytest.mark.parametrize("allowed", ["127.0.0.1", "localhost", "127.0.0.0/8",
                                     "api.example.com,LOCALHOST"])
async def test_a_host_the_allow_list_names_is_reached(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch, allowed: str) -> None:
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", allowed)
    host = "localhost" if "localhost" in allowed.lower() else "127.0.0.1"
    url = server.url.replace("127.0.0.1", host)
    out = await run(http_step({"url": url + "/x"}))
    assert out["http_response"]["status_code"] == 200
    assert [r.path for r in server.requests] == ["/x"]


async def test_a_redirect_to_a_private_address_is_refused(server: FakeServer) -> None:
    for target in ("http://10.1.2.3/admin", "http://169.254.169.254/latest/meta-data/"):
        server.reply(302, location=target)
        with pytest.raises(HttpRequestFailed) as info:
            await run(http_step({"url": server.url + "/old"}))
        host = target.split("/")[2]
        assert f"failed: host '{host}' (address {host}) is refused: it is not in " \
               "RUVON_HTTP_ALLOWED_HOSTS" in str(info.value)
        assert info.value.retryable is False


async def test_the_steps_allowed_hosts_narrow_the_environments(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "127.0.0.1,localhost")
    out = await run(http_step({"url": server.url, "allowed_hosts": ["127.0.0.1"]}))
    assert out["http_response"]["status_code"] == 200
    with pytest.raises(HttpRequestFailed, match=r"host '127\.0\.0\.1' \(address 127\.0\.0\.1\) "
                       r"is refused: it is not in the step's http_config\.allowed_hosts"):
        await run(http_step({"url": server.url, "allowed_hosts": ["localhost"]}))
    # ... and never widen it: a step cannot let itself reach what the environment refuses.
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "localhost")
    with pytest.raises(HttpRequestFailed, match="it is not in RUVON_HTTP_ALLOWED_HOSTS"):
        await run(http_step({"url": server.url, "allowed_hosts": ["127.0.0.1"]}))
    monkeypatch.delenv("RUVON_HTTP_ALLOWED_HOSTS")
    with pytest.raises(HttpRequestFailed, match="loopback addresses are refused by default"):
        await run(http_step({"url": server.url, "allowed_hosts": ["127.0.0.1"]}))
    assert len(server.requests) == 1


async def test_the_connection_goes_to_the_address_that_was_checked(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name is resolved once, where the connection is opened: nothing looks it up
    again between the check and the connect (this name is in no DNS at all)."""
    from ipaddress import ip_address

    from ruvon_workers.engine import http_transport

    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[Any]:
        lookups.append(host)
        return [ip_address("127.0.0.1")] if host == "api.rebind.test" else []

    monkeypatch.setattr(http_transport, "resolve", resolve)
    port = server.url.rsplit(":", 1)[1]
    out = await run(http_step({"url": f"http://api.rebind.test:{port}/x"}))
    assert out["http_response"]["status_code"] == 200
    assert lookups == ["api.rebind.test"]
    assert server.requests[0].headers["host"] == f"api.rebind.test:{port}"


async def test_every_address_of_a_name_is_checked(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from ipaddress import ip_address

    from ruvon_workers.engine import http_transport

    async def resolve(host: str, port: int) -> list[Any]:
        return [ip_address("127.0.0.1"), ip_address("10.0.0.7")]

    monkeypatch.setattr(http_transport, "resolve", resolve)
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "127.0.0.1")
    with pytest.raises(HttpRequestFailed, match=r"host 'twofaced\.test' \(address 10\.0\.0\.7\) "
                                                "is refused"):
        await run(http_step({"url": f"{server.url.replace('127.0.0.1', 'twofaced.test')}/x"}))
    assert server.requests == []


async def test_a_bad_allow_list_entry_fails_the_step_naming_it(server: FakeServer,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("RUVON_HTTP_ALLOWED_HOSTS", "127.0.0.1,http://api.example.com")
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"url": server.url}))
    assert "RUVON_HTTP_ALLOWED_HOSTS: 'http://api.example.com' is not a host name" \
        in str(info.value)
    assert info.value.retryable is False and server.requests == []


async def test_proxies_from_the_environment_are_not_used(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, closed_port_url())
    monkeypatch.delenv("NO_PROXY", raising=False)
    out = await run(http_step({"url": server.url + "/direct"}))
    assert out["http_response"]["status_code"] == 200


def test_check_refuses_bad_host_lists() -> None:
    step = http_step({"url": "http://h", "allowed_hosts": ["api.example.com", "a b"],
                      "forward_headers": ["X-Plain", "Authorization", "cookie",
                                          "Proxy-Authorization"]})
    assert check_http_config(step) == [
        ("http_config.allowed_hosts",
         "'a b' is not a host name, a *.domain pattern or an IP network (e.g. "
         "api.example.com, *.example.com, 10.0.0.0/8)"),
        ("http_config.forward_headers",
         "authorization, cookie, proxy-authorization: never sent to another origin; remove "
         "from forward_headers")]
    assert check_http_config(http_step({"url": "http://h", "allowed_hosts": "h"})) == [
        ("http_config.allowed_hosts", "allowed_hosts must be a list of names, not 'h'")]


# --- the deadline --------------------------------------------------------------------------

@pytest.fixture
def trickler() -> Iterator[str]:
    """A server that answers at once, then sends its 20-byte body a byte every 0.5 s."""

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "20")
                self.end_headers()
                for _ in range(20):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.5)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


async def test_the_timeout_bounds_the_whole_request(trickler: str) -> None:
    began = time.monotonic()
    with pytest.raises(HttpRequestFailed) as info:
        await run(http_step({"url": trickler + "/slowly", "timeout": 1}))
    took = time.monotonic() - began
    assert 0.9 <= took < 1.6, took
    assert str(info.value) == (f"GET {trickler}/slowly failed: timed out after 1s "
                               "(the step's timeout bounds the whole request)")
    assert info.value.retryable


async def test_the_timeout_spans_every_redirect(server: FakeServer) -> None:
    server.reply(302, location="/again", delay=0.4)  # each hop well within the timeout
    began = time.monotonic()
    with pytest.raises(HttpRequestFailed, match="timed out after 1s"):
        await run(http_step({"url": server.url + "/old", "timeout": 1}))
    assert time.monotonic() - began < 1.6
    assert 2 <= len(server.requests) <= 3


async def test_the_timeout_covers_resolving_the_host_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ruvon_workers.engine import http_transport

    async def slow_dns(host: str, port: int) -> list[Any]:
        await asyncio.sleep(5)
        return []

    monkeypatch.setattr(http_transport, "resolve", slow_dns)
    began = time.monotonic()
    with pytest.raises(HttpRequestFailed, match=r"timed out after 0\.5s"):
        await run(http_step({"url": "http://slow-dns.test/x", "timeout": 0.5}))
    assert time.monotonic() - began < 1.2


# --- in a workflow -------------------------------------------------------------------------

async def test_a_refused_host_fails_the_workflow_without_a_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUVON_HTTP_ALLOWED_HOSTS")
    builder = builder_for(tmp_path, """\
        - name: Fetch
          type: HTTP
          http_config:
            url: "http://{{ state.label }}/latest/meta-data/"
            retry_policy: {max_attempts: 3, delay_seconds: 0.01}
          output_key: label   # a field of the state model (never written here)
        """)
    wf = await create_in_process(builder, MemoryPersistenceProvider(), "Test",
                                 {"label": "169.254.169.254"})
    with pytest.raises(WorkflowFailedException, match="is refused: link-local addresses"):
        await wf.next_step()
    assert wf.status == "FAILED"
    assert "RUVON_HTTP_ALLOWED_HOSTS" in wf.error["message"]
    assert [h.status for h in await wf.history()] == ["CREATED", "FAILED"]


def test_a_bad_allowed_hosts_entry_is_named_when_the_definition_loads(
        tmp_path: Path) -> None:
    path = write_registry(tmp_path, {"Test": workflow_yaml("""\
        - name: Fetch
          type: HTTP
          http_config: {url: "http://h/", allowed_hosts: ["https://h"]}
        """)})
    with pytest.raises(DefinitionError) as info:
        load_registry(path)
    (issue,) = info.value.issues
    assert (issue.step, issue.field) == ("Fetch", "http_config.allowed_hosts")
    assert "'https://h' is not a host name" in issue.message
