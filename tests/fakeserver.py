"""A real HTTP server that imitates an LLM endpoint, for tests (stdlib only).

It speaks the OpenAI-compatible API (``POST /v1/chat/completions`` with or without
``stream: true``, ``GET /v1/models``) and Ollama's native API (``POST /api/chat``,
``POST /api/generate``, ``GET /api/tags``). It runs on 127.0.0.1, on a free port, in a
background thread; clients talk to it over real sockets.

What it answers on the generation endpoints is scripted::

    with serve(latency_s=0.05) as server:
        server.enqueue("first")                         # FIFO of replies
        server.enqueue("", status=429)                  # an error reply
        server.enqueue("", fault="drop")                # close the socket, no response
        server.set_responder(lambda req: req["messages"][-1]["content"].upper())
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")

For each generation request: (1) ``latency_s`` is slept, (2) the ``fault_plan`` may
inject a fault (the queued reply then stays queued, for the retry), (3) otherwise the next
queued reply is used, or, with an empty queue, the responder's.

``rate_limit=(n, window_s)`` makes the server admit at most ``n`` generation requests in any
``window_s`` seconds (by arrival); the rest get a 429 whose Retry-After says when a slot frees.
``admitted_times`` and ``rate_limited_count`` record what it did.

Ollama streams by default, as the real server does: send ``"stream": false`` for one
JSON object, otherwise the answer is NDJSON chunks ending with ``done: true``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("drop", "timeout", "truncate", "garbage")
CHAT_PATHS = ("/v1/chat/completions", "/api/chat", "/api/generate")
DEFAULT_CONTENT = "This is a fake reply."
DEFAULT_MODEL = "fake-model"


@dataclass
class Reply:
    """One scripted answer.

    ``status`` other than 200 gives an error body (``content`` is its message).
    ``fault``: ``"drop"`` closes the connection without a response; ``"timeout"`` sleeps
    ``delay_s`` (or the server's ``fault_delay_s`` when 0) and then drops; ``"truncate"``
    sends a 200 whose body is cut in half; ``"garbage"`` sends a 200 with a non-JSON body.
    """

    content: str = DEFAULT_CONTENT
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fault: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"fault must be None or one of {FAULTS}, not {self.fault!r}")


Responder = Callable[[dict[str, Any]], "str | Reply"]
FaultPlan = Callable[[dict[str, Any]], "Reply | None"] | dict[str, float]


class Headers(dict[str, str]):
    """A dict of request headers whose keys are lower-case and looked up case-insensitively."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    path: str
    method: str
    headers: Headers
    json: Any


def count_tokens(text: str) -> int:
    """A rough token count: the number of whitespace-separated words."""
    return len(text.split())


def _content_text(content: Any) -> str:
    """Text of an OpenAI message content, which may be a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_token_count(path: str, body: dict[str, Any]) -> int:
    if path == "/api/generate":
        return count_tokens(f"{body.get('system') or ''} {body.get('prompt') or ''}")
    messages = body.get("messages") or []
    texts = (_content_text(m.get("content")) for m in messages if isinstance(m, dict))
    return sum(count_tokens(text) for text in texts)


def _stream_pieces(content: str) -> list[str]:
    """Split content into word-sized pieces whose concatenation is the content."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", content) if p]


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, fake: FakeLLMServer) -> None:
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.connections = 0
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
            self.connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request (a cancelled task, a retry) is normal traffic; the
        # default handler prints a traceback into whatever sys.stderr is (CliRunner's output).
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_open_sockets(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._handle(self, "POST")

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json", headers)


class FakeLLMServer:
    """A scripted OpenAI-compatible and Ollama HTTP server, run in a background thread."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        fault_plan: FaultPlan | None = None,
        seed: int = 0,
        retry_after: str = "0",
        fault_delay_s: float = 30.0,
        default_content: str = DEFAULT_CONTENT,
        models: list[str] | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        self.latency_s = latency_s
        self.rate_limit = rate_limit
        self.admitted_times: list[float] = []
        self.rate_limited_count = 0
        self.retry_after = retry_after
        self.fault_delay_s = fault_delay_s
        self.models = list(models or [DEFAULT_MODEL])
        self.requests: list[RecordedRequest] = []
        self._default_content = default_content
        self._responder: Responder = lambda _request: self._default_content
        self._queue: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._count = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.fault_plan = fault_plan

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="FakeLLMServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency, delays and timeouts
        httpd.shutdown()
        httpd.close_open_sockets()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    # -- scripting -----------------------------------------------------------------------

    def enqueue(self, content: str | Reply = DEFAULT_CONTENT, **opts: Any) -> Reply:
        """Push a reply onto the FIFO; ``opts`` are further :class:`Reply` fields."""
        reply = content if isinstance(content, Reply) else Reply(content=content, **opts)
        with self._lock:
            self._queue.append(reply)
        return reply

    def set_responder(self, fn: Responder | None) -> None:
        """``fn(request_json) -> str | Reply`` answers when the queue is empty (None: default)."""
        self._responder = fn if fn is not None else (lambda _request: self._default_content)

    @property
    def fault_plan(self) -> FaultPlan | None:
        return self._fault_plan

    @fault_plan.setter
    def fault_plan(self, plan: FaultPlan | None) -> None:
        if isinstance(plan, dict):
            for key, rate in plan.items():
                if key not in FAULTS and not (key.isdigit() and 400 <= int(key) < 600):
                    raise ValueError(f"unknown fault {key!r}: use a status or one of {FAULTS}")
                if rate < 0:
                    raise ValueError(f"negative rate for {key!r}")
            if sum(plan.values()) > 1:
                raise ValueError("fault rates add up to more than 1")
        self._fault_plan = plan

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self._count = 0

    @property
    def pending(self) -> int:
        """How many queued replies are still unused."""
        with self._lock:
            return len(self._queue)

    # -- recording -----------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    @property
    def connection_count(self) -> int:
        """How many TCP connections were accepted (keep-alive reuses them)."""
        if self._httpd is None:
            return 0
        with self._httpd.sockets_lock:
            return self._httpd.connections

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded requests to the generation endpoints (OpenAI chat, Ollama chat/generate)."""
        with self._lock:
            return [r for r in self.requests if r.path in CHAT_PATHS]

    # -- request handling ----------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _injected_fault(self, request_json: dict[str, Any]) -> Reply | None:
        plan = self._fault_plan
        if plan is None:
            return None
        if callable(plan):
            return plan(request_json)
        with self._lock:
            draw = self._rng.random()
        for key, rate in plan.items():
            if draw < rate:
                return (
                    Reply(content="", fault=key)
                    if key in FAULTS
                    else Reply(content=f"injected HTTP {key}", status=int(key))
                )
            draw -= rate
        return None

    def _next_reply(self, request_json: dict[str, Any]) -> Reply:
        fault = self._injected_fault(request_json)
        if fault is not None:
            return fault
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
        if queued is not None:
            return queued
        answer = self._responder(request_json)
        return answer if isinstance(answer, Reply) else Reply(content=answer)

    def _handle(self, handler: _Handler, method: str) -> None:
        path = handler.path.split("?", 1)[0].rstrip("/") or "/"
        raw = handler.read_body() if method == "POST" else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        with self._lock:
            self._count += 1
            self.requests.append(
                RecordedRequest(
                    path=path,
                    method=method,
                    headers=Headers((k.lower(), v) for k, v in handler.headers.items()),
                    json=body,
                )
            )
        routes = {
            ("GET", "/v1/models"): self._models,
            ("GET", "/api/tags"): self._tags,
            ("POST", "/v1/chat/completions"): self._generate,
            ("POST", "/api/chat"): self._generate,
            ("POST", "/api/generate"): self._generate,
        }
        route = routes.get((method, path))
        if route is None:
            handler.send_json(
                404,
                {
                    "error": {
                        "message": f"no route {method} {path}",
                        "type": "invalid_request_error",
                        "code": None,
                    }
                },
            )
            return
        if route is self._generate and not isinstance(body, dict):
            handler.send_json(
                400,
                {
                    "error": {
                        "message": "body must be a JSON object",
                        "type": "invalid_request_error",
                        "code": None,
                    }
                },
            )
            return
        try:
            route(handler, path, body or {})
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _models(self, handler: _Handler, path: str, body: dict[str, Any]) -> None:
        handler.send_json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "fakeserver"}
                    for m in self.models
                ],
            },
        )

    def _tags(self, handler: _Handler, path: str, body: dict[str, Any]) -> None:
        handler.send_json(
            200,
            {
                "models": [
                    {
                        "name": m,
                        "model": m,
                        "modified_at": "2024-01-01T00:00:00Z",
                        "size": 1,
                        "digest": "0" * 64,
                        "details": {
                            "format": "gguf",
                            "family": "fake",
                            "parameter_size": "1B",
                            "quantization_level": "Q4",
                        },
                    }
                    for m in self.models
                ]
            },
        )

    def _over_rate_limit(self) -> float | None:
        """Seconds until a slot frees when this arrival exceeds ``rate_limit``, else None."""
        if self.rate_limit is None:
            return None
        limit, window_s = self.rate_limit
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self.admitted_times[-limit:] if t > now - window_s]
            if len(recent) >= limit:
                self.rate_limited_count += 1
                return recent[0] + window_s - now
            self.admitted_times.append(now)
        return None

    def _generate(self, handler: _Handler, path: str, body: dict[str, Any]) -> None:
        wait_s = self._over_rate_limit()
        if wait_s is not None:
            handler.send_json(
                429,
                {
                    "error": {
                        "message": "rate limit reached",
                        "type": "rate_limit_exceeded",
                        "param": None,
                        "code": None,
                    }
                },
                {"Retry-After": f"{max(wait_s, 0.0):.3f}"},
            )
            return
        self._sleep(self.latency_s)
        reply = self._next_reply(body)
        self._sleep(reply.delay_s if reply.fault != "timeout" else 0)
        if reply.fault in ("drop", "timeout"):
            if reply.fault == "timeout":
                self._sleep(reply.delay_s or self.fault_delay_s)
            handler.close_connection = True
            return
        if reply.fault == "garbage":
            handler.send_body(200, b"<html>502 Bad Gateway (not JSON)</html>", "application/json")
            return
        ollama = path.startswith("/api/")
        if reply.status != 200:
            headers = dict(reply.headers)
            if reply.status == 429 and not any(k.lower() == "retry-after" for k in headers):
                headers["Retry-After"] = self.retry_after
            message = reply.content or f"fake HTTP {reply.status}"
            payload: Any = (
                {"error": message}
                if ollama
                else {
                    "error": {
                        "message": message,
                        "type": "server_error"
                        if reply.status >= 500
                        else "rate_limit_exceeded"
                        if reply.status == 429
                        else "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
            handler.send_json(reply.status, payload, headers)
            return
        model = str(body.get("model") or self.models[0])
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = prompt_token_count(path, body)
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = count_tokens(reply.content)
        if ollama:
            stream = body.get("stream", True) is not False  # Ollama streams unless told not to
            data, content_type = self._ollama_body(
                path, model, reply, prompt_tokens, completion_tokens, stream
            )
        else:
            stream = bool(body.get("stream"))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            data, content_type = self._openai_body(
                model, reply, prompt_tokens, completion_tokens, stream, include_usage
            )
        if reply.fault == "truncate":
            data = data[: len(data) // 2]
        handler.send_body(200, data, content_type, reply.headers)

    def _openai_body(
        self,
        model: str,
        reply: Reply,
        prompt_tokens: int,
        completion_tokens: int,
        stream: bool,
        include_usage: bool,
    ) -> tuple[bytes, str]:
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not stream:
            return json.dumps(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [
                        {
                            "index": 0,
                            "logprobs": None,
                            "finish_reason": reply.finish_reason,
                            "message": {
                                "role": "assistant",
                                "content": reply.content,
                                "refusal": None,
                            },
                        }
                    ],
                    "usage": usage,
                }
            ).encode(), "application/json"

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": piece}, None) for piece in _stream_pieces(reply.content)]
        events.append(chunk({}, reply.finish_reason))
        if include_usage:
            events.append({**chunk({}, None), "choices": [], "usage": usage})
        lines = [f"data: {json.dumps(event)}\n\n" for event in events] + ["data: [DONE]\n\n"]
        return "".join(lines).encode(), "text/event-stream; charset=utf-8"

    def _ollama_body(
        self,
        path: str,
        model: str,
        reply: Reply,
        prompt_tokens: int,
        completion_tokens: int,
        stream: bool,
    ) -> tuple[bytes, str]:
        chat = path == "/api/chat"

        def text_fields(text: str) -> dict[str, Any]:
            if chat:
                return {"message": {"role": "assistant", "content": text}}
            return {"response": text}

        lines = [
            json.dumps(
                {"model": model, "created_at": _iso_now(), **text_fields(piece), "done": False}
            )
            for piece in _stream_pieces(reply.content)
        ]
        final: dict[str, Any] = {
            "model": model,
            "created_at": _iso_now(),
            **text_fields(reply.content),
            "done": True,
            "done_reason": reply.finish_reason,
            "total_duration": 1_000_000,
            "load_duration": 1_000,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 1_000,
            "eval_count": completion_tokens,
            "eval_duration": 1_000,
        }
        if not chat:
            final["context"] = []
        if not stream:
            return json.dumps(final).encode(), "application/json; charset=utf-8"
        lines.append(json.dumps({**final, **text_fields("")}))
        return ("\n".join(lines) + "\n").encode(), "application/x-ndjson"


@contextlib.contextmanager
def serve(**kwargs: Any) -> Iterator[FakeLLMServer]:
    """Start a :class:`FakeLLMServer` (``kwargs`` go to its constructor) for a with-block."""
    server = FakeLLMServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
