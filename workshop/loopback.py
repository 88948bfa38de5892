"""A loopback OpenAI-compatible HTTP server for tests and benchmarks.

It speaks just enough of the wire format for the official ``openai`` SDK: ``POST /v1/responses`` and
``POST /v1/chat/completions``. A ``responder`` scripts each answer, ``latency`` delays every request, and a FIFO of
faults injects failures (429, 500, hangs, connection resets, malformed and empty bodies), one per request.

    with LoopbackServer() as server:
        client = openai.OpenAI(api_key="test-key", base_url=server.base_url)
        server.add_faults(Fault("rate_limit"))
        client.responses.create(model="m", input="hi").output_text  # "ok", after one retry
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, get_args

__all__ = ["Fault", "FaultKind", "LoopbackServer", "ReceivedRequest", "Reply", "Responder", "default_responder"]

FaultKind = Literal["rate_limit", "server_error", "hang", "reset", "malformed", "empty"]
"""What a fault does to the one request that consumes it."""

RESPONSES_PATH = "/v1/responses"
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
_ROUTES = (RESPONSES_PATH, CHAT_COMPLETIONS_PATH)
_TEXT_KEYS = ("instructions", "input", "messages", "content", "text")
MALFORMED_BODY = b'{"id": "resp_loopback", "object": "response", "output": [ this is not json'
"""The body a ``malformed`` fault sends, with status 200 and ``Content-Type: application/json``."""


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server received it.

    ``path`` includes any query string, ``body`` is the parsed JSON object (``{}`` when absent or not an object),
    ``headers`` has lower-case names.
    """

    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def model(self) -> str | None:
        """The ``model`` the request asked for, if it named one."""
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def prompt_text(self) -> str:
        """All prompt text of the request (instructions, input, messages), joined by newlines."""
        return "\n".join(_collect_text({key: self.body[key] for key in _TEXT_KEYS if key in self.body}))


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request.

    ``refusal`` replaces the text with a refusal; ``truncated`` makes a Responses answer ``incomplete``
    (``max_output_tokens``) and a Chat Completions answer end with ``finish_reason="length"``. ``model`` defaults to the
    request's model; the token counts default to the number of words of the prompt and of the output.
    """

    text: str = ""
    refusal: str | None = None
    truncated: bool = False
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


Responder = Callable[[ReceivedRequest], Reply]
"""Decides the answer to a request."""


def default_responder(request: ReceivedRequest) -> Reply:
    """Answer every request with the text ``"ok"``."""
    return Reply(text="ok")


@dataclass(frozen=True)
class Fault:
    """One injected failure, consumed by exactly one request.

    ``retry_after`` is the ``Retry-After`` header (seconds) of a ``rate_limit`` fault; the SDK only honours values
    above 0 (for 0 it falls back to its own backoff of about 0.5 s). ``seconds`` is how long a ``hang`` waits before
    answering normally; shutting the server down cuts the wait short.
    """

    kind: FaultKind
    retry_after: float = 0.05
    seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {get_args(FaultKind)}")


class LoopbackServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1, run in a daemon thread while the context is open.

    Attributes (change them at any time): ``responder`` decides each answer, ``latency`` is slept (concurrently) by
    every request before it is answered, ``faults`` is the FIFO of pending faults (fill it with ``add_faults``).
    Counters: ``requests``, ``count``, ``max_in_flight``; ``reset_counters()`` clears them.
    """

    def __init__(self, responder: Responder = default_responder, latency: float = 0.0) -> None:
        self.responder: Responder = responder
        self.latency: float = latency
        self.faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[ReceivedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("the loopback server is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="loopback-server", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving: wake sleeping requests, drop open connections, close the socket, join the thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # wakes handler threads blocked on idle keep-alive connections
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        thread.join(timeout=5.0)
        self._httpd = self._thread = None

    @property
    def base_url(self) -> str:
        """The URL to give the SDK as ``base_url``: ``http://127.0.0.1:<port>/v1``."""
        if self._httpd is None:
            raise RuntimeError("the loopback server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def add_faults(self, *faults: Fault) -> None:
        """Queue faults; each of the next requests to an API endpoint consumes one, in order."""
        with self._lock:
            self.faults.extend(faults)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many requests arrived."""
        with self._lock:
            return len(self._requests)

    @property
    def max_in_flight(self) -> int:
        """The highest number of requests that were being handled at the same time."""
        with self._lock:
            return self._max_in_flight

    def reset_counters(self) -> None:
        """Forget the recorded requests and the in-flight high-water mark (pending faults stay)."""
        with self._lock:
            self._requests.clear()
            self._max_in_flight = 0

    def _arrived(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _departed(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server stops first; True if it is still running."""
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog: many simultaneous connections

    def __init__(self, loopback: LoopbackServer) -> None:
        self.loopback = loopback
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client goes away (timeouts, resets); report anything else."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server: _HTTPServer
    _in_flight = False

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small answers
        self.server.loopback._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.loopback._track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""

    def do_POST(self) -> None:
        loopback = self.server.loopback
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = ReceivedRequest(self.path, parsed if isinstance(parsed, dict) else {}, headers)
        route = self.path.split("?", 1)[0].rstrip("/")
        loopback._arrived(request)
        self._in_flight = True
        try:
            if self.command != "POST" or route not in _ROUTES:
                message = f"Unknown request URL: {self.command} {self.path}."
                self._send_error(404, message, "invalid_request_error", "unknown_url")
            elif not isinstance(parsed, dict):
                self._send_error(400, "The request body is not a JSON object.", "invalid_request_error", "invalid_json")
            else:
                self._serve(route, request, loopback._next_fault())
        finally:
            self._depart()

    def _depart(self) -> None:
        """Leave the in-flight count, once, just before the client can see the outcome."""
        if self._in_flight:
            self._in_flight = False
            self.server.loopback._departed()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _serve(self, route: str, request: ReceivedRequest, fault: Fault | None) -> None:
        loopback = self.server.loopback
        if not loopback._pause(loopback.latency):
            self.close_connection = True
        elif fault is None or fault.kind == "empty":
            self._answer(route, request, empty=fault is not None)
        elif fault.kind == "rate_limit":
            message = "Rate limit reached for requests (loopback fault)."
            headers = {"Retry-After": f"{fault.retry_after:g}"}
            self._send_error(429, message, "requests", "rate_limit_exceeded", headers)
        elif fault.kind == "server_error":
            message = "The server had an error while processing your request (loopback fault)."
            self._send_error(500, message, "server_error", "server_error")
        elif fault.kind == "reset":
            self._reset()
        elif fault.kind == "malformed":
            self._send(200, MALFORMED_BODY)
        elif loopback._pause(fault.seconds):  # hang, then answer normally (the client is usually gone by then)
            self._answer(route, request, empty=False)
        else:  # the server is stopping: drop the connection without an answer
            self.close_connection = True

    def _answer(self, route: str, request: ReceivedRequest, *, empty: bool) -> None:
        loopback = self.server.loopback
        try:
            reply = Reply(text="") if empty else loopback.responder(request)
        except Exception as exc:
            self._send_error(500, f"The loopback responder raised {exc!r}.", "server_error", "responder_error")
            return
        build = _responses_body if route == RESPONSES_PATH else _chat_completion_body
        self._send_json(200, build(request, reply, loopback.count))

    def _reset(self) -> None:
        """Close the connection abruptly (RST, no response)."""
        self.close_connection = True
        self._depart()
        with suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _send_error(
        self, status: int, message: str, type_: str, code: str, headers: dict[str, str] | None = None
    ) -> None:
        error = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        self._send_json(status, error, headers)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self._depart()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _collect_text(value: object) -> list[str]:
    """The strings of a prompt: plain strings, message ``content`` and part ``text``, depth first."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _collect_text(item)]
    if isinstance(value, dict):
        return [text for key in _TEXT_KEYS if key in value for text in _collect_text(value[key])]
    return []


def _tokens(reply: Reply, request: ReceivedRequest) -> tuple[int, int]:
    output = reply.refusal if reply.refusal is not None else reply.text
    input_tokens = reply.input_tokens if reply.input_tokens is not None else len(request.prompt_text.split())
    output_tokens = reply.output_tokens if reply.output_tokens is not None else len(output.split())
    return input_tokens, output_tokens


def _responses_body(request: ReceivedRequest, reply: Reply, serial: int) -> dict[str, Any]:
    """A Responses API ``response`` object."""
    body = request.body
    status = "incomplete" if reply.truncated else "completed"
    if reply.refusal is not None:
        part: dict[str, Any] = {"type": "refusal", "refusal": reply.refusal}
    else:
        part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
    message = {"id": f"msg_loopback_{serial}", "type": "message", "role": "assistant", "status": status}
    input_tokens, output_tokens = _tokens(reply, request)
    created = int(time.time())
    return {
        "id": f"resp_loopback_{serial}",
        "object": "response",
        "created_at": created,
        "completed_at": None if reply.truncated else created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if reply.truncated else None,
        "instructions": body.get("instructions") if isinstance(body.get("instructions"), str) else None,
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": reply.model or request.model or "loopback",
        "output": [{**message, "content": [part]}],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
    }


def _chat_completion_body(request: ReceivedRequest, reply: Reply, serial: int) -> dict[str, Any]:
    """A Chat Completions ``chat.completion`` object."""
    input_tokens, output_tokens = _tokens(reply, request)
    refused = reply.refusal is not None
    message = {"role": "assistant", "content": None if refused else reply.text, "refusal": reply.refusal}
    return {
        "id": f"chatcmpl-loopback-{serial}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or request.model or "loopback",
        "choices": [
            {
                "index": 0,
                "message": {**message, "annotations": []},
                "logprobs": None,
                "finish_reason": "length" if reply.truncated else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
        "system_fingerprint": None,
    }
