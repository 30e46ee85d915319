"""A fake OpenAI Batch API for tests: files, batches and their retrieval, over real HTTP.

Endpoints: ``POST /v1/files`` (multipart, purpose=batch), ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/models``. Each request line of an
uploaded file is answered by the responder (as tests/fakeserver.py's, ``fn(body) -> str``) when
the job completes. ``hold()`` keeps new jobs in progress until ``release()``; ``fail_next(n)``
makes the next n request lines fail with a 500 in the error file.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .fakeserver import count_tokens, prompt_token_count


class FakeBatchAPI:
    def __init__(self, responder: Callable[[dict[str, Any]], str]) -> None:
        self.responder = responder
        self.files: dict[str, str] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_requests: dict[str, list[dict[str, Any]]] = {}
        self.held = False
        self.polls = 0
        self._fail_budget = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- scripting ---------------------------------------------------------------------------
    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False

    def fail_next(self, n: int) -> None:
        self._fail_budget = n

    @property
    def created(self) -> int:
        return len(self.batches)

    def request_lines(self) -> list[dict[str, Any]]:
        return [line for lines in self.batch_requests.values() for line in lines]

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeBatchAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.handle(self, "GET")

            def do_POST(self) -> None:
                api.handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # -- handling ----------------------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = handler.path.split("?")[0].strip("/").split("/")  # v1/...
        status, payload = 404, {"error": {"message": f"no route {method} {handler.path}"}}
        with self._lock:
            if method == "GET" and parts == ["v1", "models"]:
                status, payload = 200, {"object": "list", "data": [{"id": "fake-model"}]}
            elif method == "POST" and parts == ["v1", "files"]:
                status, payload = self.upload(handler.headers.get("Content-Type", ""), raw)
            elif method == "GET" and parts[:2] == ["v1", "files"] and parts[3:] == ["content"]:
                if parts[2] in self.files:
                    body = self.files[parts[2]].encode()
                    handler.send_response(200)
                    handler.send_header("Content-Type", "application/jsonl")
                    handler.send_header("Content-Length", str(len(body)))
                    handler.end_headers()
                    handler.wfile.write(body)
                    return
            elif method == "POST" and parts == ["v1", "batches"]:
                status, payload = self.create(json.loads(raw))
            elif method == "GET" and parts[:2] == ["v1", "batches"] and len(parts) == 3:
                self.polls += 1
                if parts[2] in self.batches:
                    status, payload = 200, self.progress(self.batches[parts[2]])
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def upload(self, content_type: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields = {
            part.get_param("name", header="content-disposition"): part.get_content()
            for part in message.iter_parts()
        }
        if fields.get("purpose") != "batch" or "file" not in fields:
            return 400, {"error": {"message": "need purpose=batch and a file"}}
        content = fields["file"]
        file_id = f"file-{uuid.uuid4().hex[:12]}"
        self.files[file_id] = content if isinstance(content, str) else content.decode()
        return 200, {"id": file_id, "object": "file", "purpose": "batch"}

    def create(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = request.get("input_file_id")
        if file_id not in self.files:
            return 400, {"error": {"message": f"no file {file_id}"}}
        batch_id = f"batch_{uuid.uuid4().hex[:12]}"
        lines = [json.loads(line) for line in self.files[file_id].splitlines() if line.strip()]
        self.batch_requests[batch_id] = lines
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": request["endpoint"],
            "input_file_id": file_id,
            "completion_window": request["completion_window"],
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "held": self.held,
        }
        return 200, self.public(self.batches[batch_id])

    def progress(self, batch: dict[str, Any]) -> dict[str, Any]:
        if batch["status"] == "in_progress" and not (batch["held"] and self.held):
            self.finish(batch)
        return self.public(batch)

    def finish(self, batch: dict[str, Any]) -> None:
        outputs, errors = [], []
        for line in self.batch_requests[batch["id"]]:
            result = {"id": f"batch_req_{uuid.uuid4().hex[:8]}", "custom_id": line["custom_id"]}
            if self._fail_budget > 0:
                self._fail_budget -= 1
                errors.append(
                    {
                        **result,
                        "response": {
                            "status_code": 500,
                            "body": {"error": {"message": "injected failure"}},
                        },
                        "error": None,
                    }
                )
                continue
            body = line["body"]
            content = self.responder(body)
            outputs.append(
                {
                    **result,
                    "error": None,
                    "response": {
                        "status_code": 200,
                        "body": {
                            "id": "chatcmpl-batch",
                            "object": "chat.completion",
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content},
                                }
                            ],
                            "usage": {
                                "prompt_tokens": prompt_token_count("/v1/chat/completions", body),
                                "completion_tokens": count_tokens(content),
                            },
                        },
                    },
                }
            )
        for key, items in (("output_file_id", outputs), ("error_file_id", errors)):
            if items:
                file_id = f"file-{uuid.uuid4().hex[:12]}"
                self.files[file_id] = "".join(json.dumps(item) + "\n" for item in items)
                batch[key] = file_id
        batch["status"] = "completed"
        batch["request_counts"] = {
            "total": len(outputs) + len(errors),
            "completed": len(outputs),
            "failed": len(errors),
        }

    @staticmethod
    def public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if k != "held"}


@contextlib.contextmanager
def serve_batch(responder: Callable[[dict[str, Any]], str]) -> Iterator[FakeBatchAPI]:
    api = FakeBatchAPI(responder).start()
    try:
        yield api
    finally:
        api.stop()
