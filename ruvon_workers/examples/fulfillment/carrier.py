"""A stand-in carrier API for the example: ``GET /quote?country=DE&weight_kg=1.5``.

The demo and the tests run it in their own process (stdlib ``http.server`` on 127.0.0.1,
a free port, a daemon thread); the ``Quote_Shipping`` HTTP step calls it.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EU = {"DE", "FR", "NL", "BE", "AT", "IT", "ES"}


def quote_for(country: str, weight_kg: float) -> dict[str, Any]:
    """The carrier's price list: a base price plus 1.20 per started kilogram."""
    domestic = country in EU
    return {"carrier": "ParcelCo" if domestic else "GlobalShip",
            "service": "standard" if domestic else "international",
            "price": round((4.90 if domestic else 14.90) + 1.20 * math.ceil(weight_kg), 2),
            "currency": "EUR", "days": 2 if domestic else 5}


@dataclass
class CarrierAPI:
    url: str
    token: str | None
    #: ``(path, headers)`` of every request, for tests.
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def _handler(api: CarrierAPI) -> type[BaseHTTPRequestHandler]:
    class QuoteHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests.append((self.path, dict(self.headers)))
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path != "/quote":
                return self._send(404, {"error": f"no route {url.path}"})
            if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                return self._send(401, {"error": "bad or missing token"})
            try:
                weight = float(query.get("weight_kg", "0"))
            except ValueError:
                return self._send(400, {"error": "weight_kg must be a number"})
            return self._send(200, quote_for(query.get("country", ""), weight))

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the demo prints its own output

    return QuoteHandler


@contextlib.contextmanager
def carrier_api(token: str | None = None) -> Iterator[CarrierAPI]:
    """Serve the carrier API on 127.0.0.1 (a free port) until the block ends. With
    ``token``, requests must carry ``Authorization: Bearer <token>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    api = CarrierAPI(f"http://127.0.0.1:{server.server_address[1]}", token)
    server.RequestHandlerClass = _handler(api)
    thread = threading.Thread(target=server.serve_forever, name="carrier-api", daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
