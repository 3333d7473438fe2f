"""A small threaded JSON HTTP server (stdlib) that the API emulators are built on.

Routes are regular expressions matched against the raw (still percent-encoded) path, so an
emulator can split paths exactly as the real service does. Every request is recorded; faults
(latency, injected status codes, dropped connections) are applied per route before the handler.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from leadgen.sandbox.faults import Faults

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """Raised by a handler for a client error; rendered by the server's error formatter."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@dataclass
class Request:
    method: str
    path: str  # raw, percent-encoded, without the query string
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    client: tuple[str, int]

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(400, f"invalid JSON body: {exc}") from None

    @property
    def authorization(self) -> str:
        return self.headers.get("Authorization", "") or ""


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


@dataclass
class RequestRecord:
    method: str
    path: str
    route: str
    status: int | str
    at: float


Handler = Callable[..., Response]
ErrorFormatter = Callable[..., Response]


def default_error(status: int, message: str) -> Response:
    return Response(status, {"error": {"code": status, "message": message}})


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    fault_key: str | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type, app: JsonServer) -> None:
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    timeout = 60  # idle keep-alive connections are closed after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s %s", self.server.app.name, format % args)

    def _handle(self) -> None:
        self.server.app.dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class JsonServer:
    """A threaded HTTP/1.1 server on a free loopback port with regex routes."""

    def __init__(self, name: str, *, faults: Faults | None = None, host: str = "127.0.0.1",
                 latency_s: float = 0.0, error_formatter: ErrorFormatter = default_error) -> None:
        self.name = name
        self.faults = faults or Faults()
        self.host = host
        self.latency_s = latency_s
        self.error_formatter = error_formatter
        self.routes: list[_Route] = []
        self.records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- routing ------------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, handler: Handler, *, name: str | None = None,
                  fault_key: str | None = "") -> None:
        """fault_key "" = the server's name; None = no injected faults on this route."""
        key = self.name if fault_key == "" else fault_key
        self.routes.append(_Route(method.upper(), re.compile(pattern), handler,
                                  name or handler.__name__, key))

    def counts(self) -> Counter[str]:
        """Requests per route name (including rejected ones)."""
        with self._records_lock:
            return Counter(record.route for record in self.records)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, port: int = 0) -> int:
        self._server = _Server((self.host, port), _RequestHandler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{self.name}", daemon=True)
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:  # end idle keep-alive connections too
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- request handling ---------------------------------------------------------------------
    def dispatch(self, handler: _RequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        request = Request(handler.command, split.path, parse_qs(split.query, keep_blank_values=True),
                          handler.headers, body, handler.client_address)
        route, match = self._match(request)
        route_name = route.name if route else "unmatched"
        if self.latency_s:
            time.sleep(self.latency_s)
        response: Response | None = None
        if route is not None and route.fault_key:
            delay = self.faults.latency_s(route.fault_key)
            if delay:
                time.sleep(delay)
            fault = self.faults.http_fault(route.fault_key)
            if fault == "drop":
                self._record(request, route_name, "drop")
                handler.close_connection = True
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault is not None:
                response = self.error_formatter(int(fault), "injected fault")
        if response is None:
            response = self._call(request, route, match)
        self._record(request, route_name, response.status)
        self._send(handler, response)

    def _match(self, request: Request) -> tuple[_Route | None, re.Match[str] | None]:
        for route in self.routes:
            if route.method != request.method:
                continue
            match = route.pattern.fullmatch(request.path)
            if match:
                return route, match
        return None, None

    def _call(self, request: Request, route: _Route | None, match: re.Match[str] | None) -> Response:
        if route is None or match is None:
            return self.error_formatter(404, f"no such endpoint: {request.method} {request.path}")
        try:
            return route.handler(request, **match.groupdict())
        except BadRequest as exc:
            details = {k: v for k, v in exc.extra.items() if k != "headers"}
            response = self.error_formatter(exc.status, exc.message, **details)
            response.headers.update(exc.extra.get("headers", {}))
            return response
        except Exception as exc:  # an emulator bug: answer like a server error, keep serving
            log.exception("%s: handler %s failed", self.name, route.name)
            return self.error_formatter(500, f"internal error: {exc}")

    def _record(self, request: Request, route: str, status: int | str) -> None:
        with self._records_lock:
            self.records.append(RequestRecord(request.method, request.path, route, status, time.time()))

    @staticmethod
    def _send(handler: _RequestHandler, response: Response) -> None:
        payload = response.encode()
        try:
            handler.send_response(response.status)
            if payload or response.body is not None:
                handler.send_header("Content-Type", response.content_type)
            for key, value in response.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
