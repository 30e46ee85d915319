"""OpenAI Batch API mode (`run --batch`): the run's requests go out as batch jobs, at half price.

Tasks run as usual; each LLM call waits on a future instead of an HTTP answer. When no new
request has arrived for a moment (or a batch is full) the waiting requests are uploaded as one
JSONL file and a batch job is created; its id and the requests' custom ids (hashes of their
bodies) are recorded as a ``batch_submitted`` event *before* polling starts. A run restarted
after a crash finds that event, and a request whose body hashes to a recorded custom id waits on
the recorded job instead of being submitted again. Results come back as ordinary completions
(so the runner writes ordinary response events); failed items raise a transient error, and the
runner's retry sends only those in the next batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import aiohttp

from medstore.llm.base import Backend, BackendError, Completion, GenerationParams, TransientError
from medstore.llm.http import is_redirect, read_aiohttp, redirect_error
from medstore.llm.openai_backend import OpenAIBackend, error_message, parse_chat_completion
from medstore.llm.prices import BATCH_DISCOUNT
from medstore.warehouse.events import BatchFinished, BatchSubmitted, Event
from medstore.warehouse.hashing import canonical_json, json_hash

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
FINAL_STATUSES = ("completed", "failed", "expired", "cancelled")
MAX_REQUESTS = 50_000  # the Batch API's limit per file
MAX_POLL_FAILURES = 5
MAX_FILE_BYTES = 200_000_000  # the Batch API's own limit on a file


class BatchAPIError(Exception):
    """The Batch API refused a file or a job; the waiting calls fail and are retried."""


class BatchBackend(Backend):
    """Wraps an OpenAI-compatible backend; same identity, so cache keys do not change."""

    price_factor = BATCH_DISCOUNT

    def __init__(
        self,
        inner: OpenAIBackend,
        *,
        poll_interval_s: float = 30.0,
        linger_s: float = 1.0,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        super().__init__(inner.model, inner.base_url, inner.timeout)
        self.inner = inner
        self.name = inner.name
        self.poll_interval_s = poll_interval_s
        self.linger_s = linger_s
        self.max_requests = max_requests
        self.submitted_batches = 0
        self._queue: dict[str, tuple[dict[str, Any], asyncio.Future]] = {}
        self._waiting: dict[str, asyncio.Future] = {}  # custom id -> its result, once submitted
        self._recorded: dict[str, str] = {}  # custom id -> batch id, from the log
        self._members: dict[str, list[str]] = {}  # batch id -> its custom ids
        self._results: dict[str, dict[str, Any]] = {}  # results no call has asked for yet
        self._pollers: dict[str, asyncio.Task] = {}
        self._flusher: asyncio.Task | None = None
        self._last_arrival = 0.0
        self._emit: Callable[[Event], Future] | None = None

    @property
    def secrets(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.secrets

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def preflight(self) -> None:
        await self.inner.preflight()

    def structured_request(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None,
    ) -> tuple[list[dict[str, str]], GenerationParams, dict[str, Any] | None]:
        # The inner backend's dialect; a refusal comes back as a failed batch item (transient),
        # so a batch run keeps its first dialect: json_schema, which the Batch API accepts.
        return self.inner.structured_request(messages, params, schema)

    def bind_log(self, warehouse: Any, emit: Callable[[Event], Future]) -> None:
        """Called by the runner: where to record jobs, and the jobs earlier runs submitted.

        Finished jobs count too: a run that crashed after a job ended but before its answers
        were logged fetches them again (the files stay at the API) instead of paying twice.
        """
        self._emit = emit
        self.inner.bind_log(warehouse, emit)
        rows = warehouse.select("submitted_batches", base_url=self.base_url)
        for row in rows:
            members = json.loads(warehouse.blob(row["custom_ids_blob"]) or "[]")
            self._members[row["batch_id"]] = members
            for custom_id in members:
                self._recorded[custom_id] = row["batch_id"]

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
    ) -> Completion:
        body = self.inner.request_body(messages, params, schema)
        custom_id = json_hash(body)
        loop = asyncio.get_running_loop()
        if custom_id in self._waiting:  # an identical request is already in a job
            return await asyncio.shield(self._waiting[custom_id])
        if custom_id in self._recorded:  # an earlier run's job holds it: use that job's answer
            future = self._waiting[custom_id] = loop.create_future()
            batch_id = self._recorded.pop(custom_id)
            if custom_id in self._results:
                self._resolve(custom_id, batch_id, self._results.pop(custom_id))
            else:
                self._poll(batch_id)
            return await asyncio.shield(future)
        if custom_id not in self._queue:
            self._queue[custom_id] = (body, loop.create_future())
        future = self._queue[custom_id][1]
        self._last_arrival = loop.time()
        if len(self._queue) >= self.max_requests:
            await self._submit()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_when_quiet())
        return await asyncio.shield(future)

    async def _flush_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                quiet_for = loop.time() - self._last_arrival
                if quiet_for >= self.linger_s:
                    await self._submit()
                else:
                    await asyncio.sleep(self.linger_s - quiet_for)
        except Exception as exc:  # e.g. the log cannot be written: every waiting call learns it
            for future in [*self._waiting.values(), *(f for _, f in self._queue.values())]:
                if not future.done():
                    future.set_exception(exc)
            raise

    async def _submit(self) -> None:
        queued, self._queue = self._queue, {}
        if not queued:
            return
        lines = [
            canonical_json({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body})
            for cid, (body, _) in queued.items()
        ]
        for cid, (_, future) in queued.items():
            self._waiting[cid] = future
        try:
            file_id = await self._upload("\n".join(lines) + "\n")
            batch = await self._request(
                "POST",
                "/batches",
                json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"},
            )
        except BatchAPIError as exc:
            self._fail(list(queued), "batch_submit_failed", str(exc))
            return
        self.submitted_batches += 1
        self._members[batch["id"]] = list(queued)
        if self._emit is not None:
            # Durable before we wait on the job: a crash from here on polls, never resubmits.
            recorded = self._emit(
                BatchSubmitted(
                    batch_id=batch["id"],
                    input_file_id=file_id,
                    base_url=self.base_url,
                    requests=len(queued),
                    custom_ids=canonical_json(list(queued)),
                )
            )
            await asyncio.wrap_future(recorded)
        log.info("batch %s submitted with %d requests", batch["id"], len(queued))
        self._poll(batch["id"])

    def _poll(self, batch_id: str) -> None:
        if batch_id not in self._pollers:
            self._pollers[batch_id] = asyncio.create_task(self._poll_until_done(batch_id))

    async def _poll_until_done(self, batch_id: str) -> None:
        failures = 0
        while True:
            try:
                batch = await self._request("GET", f"/batches/{batch_id}")
                failures = 0
            except BatchAPIError as exc:
                failures += 1
                if failures > MAX_POLL_FAILURES:
                    self._fail(self._members.get(batch_id, []), "batch_lost", str(exc))
                    return
                log.warning("batch %s: polling failed (%s); trying again", batch_id, exc)
                batch = {}
            if batch.get("status") in FINAL_STATUSES:
                break
            await asyncio.sleep(self.poll_interval_s)
        results: dict[str, dict[str, Any]] = {}
        try:
            for key in ("output_file_id", "error_file_id"):
                if batch.get(key):
                    for line in (await self._download(batch[key])).splitlines():
                        if line.strip():
                            item = json.loads(line)
                            results[item["custom_id"]] = item
        except BatchAPIError as exc:
            self._fail(self._members.get(batch_id, []), "batch_lost", str(exc))
            return
        outcomes = [
            self._resolve(custom_id, batch_id, results.get(custom_id))
            for custom_id in self._members.get(batch_id, [])
        ]
        if self._emit is not None:
            finished = BatchFinished(
                batch_id=batch_id,
                status=str(batch.get("status")),
                succeeded=outcomes.count(True),
                failed=outcomes.count(False),
            )
            await asyncio.wrap_future(self._emit(finished))

    def _resolve(self, custom_id: str, batch_id: str, item: dict[str, Any] | None) -> bool:
        """Hand one result to its waiting call (or keep it for a call still to come).
        Returns whether the request succeeded."""
        future = self._waiting.pop(custom_id, None)
        if future is None:
            if item is not None and custom_id in self._recorded:
                self._results[custom_id] = item
            return bool(item and (item.get("response") or {}).get("status_code") == 200)
        response = (item or {}).get("response") or {}
        outcome: Completion | TransientError
        if item is None:
            outcome = TransientError("batch_item_missing", f"batch {batch_id}: no result")
        elif response.get("status_code") == 200 and not item.get("error"):
            try:
                outcome = parse_chat_completion(json.dumps(response.get("body")))
            except TransientError as exc:
                outcome = exc
        else:
            error = item.get("error") or {}
            message = error.get("message") or error_message(json.dumps(response.get("body")))
            outcome = TransientError(
                "batch_item_failed",
                f"batch {batch_id}: {message}",
                status=response.get("status_code"),
            )
        if not future.done():
            if isinstance(outcome, Completion):
                future.set_result(outcome)
            else:
                future.set_exception(outcome)
        return isinstance(outcome, Completion)

    def _fail(self, custom_ids: list[str], kind: str, message: str) -> None:
        for cid in custom_ids:
            future = self._waiting.pop(cid, None)
            if future is not None and not future.done():
                future.set_exception(TransientError(kind, message))

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self.inner.session().request(
                method, f"{self.base_url}{path}", allow_redirects=False, **kwargs
            ) as response:
                status, headers = response.status, response.headers
                text = await read_aiohttp(response, MAX_FILE_BYTES, f"{self.base_url}{path}")
        except (aiohttp.ClientError, TimeoutError, BackendError) as exc:
            raise BatchAPIError(f"{method} {path}: {exc}") from exc
        if is_redirect(status):
            raise BatchAPIError(str(redirect_error(status, headers, f"{self.base_url}{path}")))
        if status >= 400:
            raise BatchAPIError(f"{method} {path}: HTTP {status}: {error_message(text)}")
        return json.loads(text)

    async def _upload(self, jsonl: str) -> str:
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="medstore-batch.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
            f"{jsonl}\r\n--{boundary}--\r\n"
        ).encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        uploaded = await self._request("POST", "/files", data=body, headers=headers)
        return uploaded["id"]

    async def _download(self, file_id: str) -> str:
        try:
            url = f"{self.base_url}/files/{file_id}/content"
            async with self.inner.session().get(url, allow_redirects=False) as response:
                if is_redirect(response.status):
                    raise BatchAPIError(str(redirect_error(response.status, response.headers, url)))
                if response.status >= 400:
                    raise BatchAPIError(f"file {file_id}: HTTP {response.status}")
                return await read_aiohttp(response, MAX_FILE_BYTES, url)
        except (aiohttp.ClientError, TimeoutError, BackendError) as exc:
            raise BatchAPIError(f"file {file_id}: {exc}") from exc

    async def aclose(self) -> None:
        for task in [*self._pollers.values(), self._flusher]:
            if task is not None and not task.done():
                task.cancel()
        await self.inner.aclose()
