"""The event vocabulary: one small typed class per event type.

An event is what happened (its payload); the envelope says where (run, recipe, task, stage,
attempt, parent). Long texts named in ``blob_fields`` are stored once in the ``blobs`` table and
the payload keeps their hash under ``<field>_blob``; ``messages`` keep each content as a blob.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from medstore.warehouse.hashing import content_hash, utc_now, uuid7


class Event(BaseModel):
    # defer_build: each event class's validator is built when first used, not at import (a run
    # uses a dozen of the thirty; building all of them was a fifth of the start-up imports).
    model_config = ConfigDict(extra="forbid", defer_build=True)
    event_type: ClassVar[str]
    blob_fields: ClassVar[tuple[str, ...]] = ()


# Runs -------------------------------------------------------------------------------------------
class RunStarted(Event):
    event_type = "run_started"
    command: str
    config: dict[str, Any]
    code_version: str
    prompt_hashes: dict[str, str] = {}


class RunFinished(Event):
    event_type = "run_finished"
    status: str  # completed | interrupted | failed | budget_exhausted
    counts: dict[str, int] = {}
    message: str | None = None


class SourceSkipped(Event):
    """A source record that never became a task (blank, malformed, or unusable), with the reason."""

    event_type = "source_skipped"
    source_id: str
    reason: str
    detail: str | None = None


# Tasks ------------------------------------------------------------------------------------------
class TaskStarted(Event):
    event_type = "task_started"
    source_id: str
    source_record: str
    blob_fields = ("source_record",)


class TaskClaimed(Event):
    """A run holds a task until ``expires_utc`` (renewed while it works), so that runs sharing a
    warehouse never do one task twice; a claim left by a killed run expires and is taken over."""

    event_type = "task_claimed"
    owner: str  # the claiming run's id
    expires_utc: str
    host: str | None = None  # with pid: a claim whose process is gone is taken over at once
    pid: int | None = None


class LLMRequest(Event):
    event_type = "llm_request"
    backend: str
    base_url: str | None
    model: str
    params: dict[str, Any]
    messages: list[dict[str, str]]
    response_schema: dict[str, Any] | None = None
    request_hash: str
    prompt_template: str | None = None
    prompt_template_hash: str | None = None


class LLMResponse(Event):
    event_type = "llm_response"
    request_hash: str
    raw_output: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float  # on the wire: from sending the request to its last byte
    finish_reason: str | None = None
    cost_usd: float | None = None
    model_reported: str | None = None
    queue_ms: float | None = None  # waiting in medstore for a rate-limit slot before the send
    server_ms: float | None = None  # the server's own time, when it reports it
    blob_fields = ("raw_output",)


class LLMError(Event):
    event_type = "llm_error"
    kind: str  # rate_limited | server_error | timeout | connection | bad_response | client_error
    status: int | None = None
    retry_number: int
    message: str
    retry_after_s: float | None = None
    will_retry: bool


class StructuredOutputDecision(Event):
    """Which structured-output dialect a run sends a server's JSON stages in, and why: one when
    the first JSON stage is sent, another each time the server's refusal changes it."""

    event_type = "structured_output_decision"
    backend: str
    base_url: str | None
    model: str
    requested: str  # auto, or the dialect --structured-output named
    mode: str  # the dialect in use from now on
    constrained: bool  # does the server get the schema as a constraint (else: in the prompt)
    rule: str  # configured | auto_first_choice | auto_after_refusal | configured_refused
    tried: list[dict[str, Any]] = []  # each dialect tried: mode, outcome, status, message


class CacheReplay(Event):
    """A request answered from an earlier response in the log instead of the network."""

    event_type = "cache_replay"
    request_hash: str
    replayed_event_id: str
    raw_output: str
    blob_fields = ("raw_output",)


class ParseFailed(Event):
    event_type = "parse_failed"
    errors: list[str]


class ValidationVerdict(Event):
    event_type = "validation_verdict"
    passed: bool
    errors: list[str] = []
    metrics: dict[str, Any] = {}
    # The validator set that judged (medstore/pipeline/validator_version.py); None before it.
    validator_version: str | None = None
    # The content gates that failed (medstore.checks.gates): {"gate", "field", "error"} each.
    gates: list[dict[str, str]] = []


class RepairRequested(Event):
    event_type = "repair_requested"
    repair_attempt: int
    errors: list[str]


class SampleAccepted(Event):
    event_type = "sample_accepted"
    sample_id: str
    content_hash: str
    sample: str  # the sample as canonical JSON
    label: str | None = None
    validator_version: str | None = None
    revalidated: bool = False  # judged again from recorded outputs (`revalidate`), no call
    blob_fields = ("sample",)


class SampleRejected(Event):
    event_type = "sample_rejected"
    reason: str
    errors: list[str] = []
    fallback_sample: str | None = None
    validator_version: str | None = None
    revalidated: bool = False
    blob_fields = ("fallback_sample",)


class TaskFailed(Event):
    """Transport failures outlasted the retries: the task is not finished, so resume redoes it."""

    event_type = "task_failed"
    reason: str
    message: str = ""


class ReviewVerdict(Event):
    """A person's QA decision on a sample; a reject removes it from the dataset views."""

    event_type = "review_verdict"
    sample_id: str
    verdict: str  # accept | reject
    reviewer: str
    note: str = ""


class QualityScan(Event):
    """Near-duplicate clusters and contamination hits over a recipe's samples at one moment.

    ``flags`` (a JSON list, stored once as a blob) holds one object per flagged sample: a
    near or semantic duplicate names its cluster and the representative kept; a contaminated
    sample names the evaluation set and document it matched. The latest scan of a recipe is
    what the ``quality_flags`` view shows and exports leave out."""

    event_type = "quality_scan"
    scanner_version: str  # the settings, eval data and code: same version, same verdicts
    settings: dict[str, Any]
    eval_sets: list[dict[str, Any]] = []
    samples: int
    sample_set_hash: str  # the scanned sample ids: a later dataset differs, so the scan is stale
    clusters: int
    duplicates: int
    contaminated: int
    seconds: float
    notes: list[str] = []
    flags: str
    blob_fields = ("flags",)


# Exports, training and evaluation ----------------------------------------------------------------
class ExportWritten(Event):
    """A dataset written to disk. ``sample_ids`` (a JSON list, stored once as a blob) lets the
    ``sample_exports`` view list every export a sample went into."""

    event_type = "export_written"
    export_id: str  # derived from the exported content: same data, same id
    recipe: str
    format: str  # jsonl | arrow | parquet | hf-hub-ready
    kind: str = "sft"  # sft | preference (DPO pairs)
    out_dir: str
    view: str
    include_fallbacks: bool
    split_ratio: float  # the train share
    splits: dict[str, float] = {}  # every split's share (train, validation, test)
    counts: dict[str, int]
    manifest_hash: str
    data_hash: str
    sample_ids_hash: str
    sample_ids: str
    blob_fields = ("sample_ids",)


class TrainingStarted(Event):
    event_type = "training_started"
    training_run_id: str
    base_model: str
    weights_hash: str | None = None
    method: str  # lora | full
    config: dict[str, Any]
    data_dir: str
    data_fingerprint: str
    export_id: str | None = None
    export_manifest_hash: str | None = None
    examples: dict[str, int] = {}
    code_version: str


class TrainingLogged(Event):
    """One logging step of a training run (train loss) or an evaluation (eval loss)."""

    event_type = "training_logged"
    training_run_id: str
    step: int
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    eval_loss: float | None = None
    grad_norm: float | None = None


class TrainingFinished(Event):
    event_type = "training_finished"
    training_run_id: str
    status: str  # completed | failed | interrupted
    out_dir: str | None = None
    artefacts: dict[str, str] = {}
    metrics: dict[str, float] = {}
    training_manifest_hash: str | None = None
    message: str | None = None


class EvalResult(Event):
    event_type = "eval_result"
    eval_id: str
    task: str  # medec-detect | structure | json-validity
    model: str  # what was evaluated: an output folder, a hub id, "bundled", an endpoint's model
    role: str  # base | trained | teacher | endpoint | run-file
    base_model: str | None = None
    training_run_id: str | None = None
    examples: int
    metrics: dict[str, float]
    data: str
    config: dict[str, Any] = {}
    counts: dict[str, int] = {}
    run_file: str | None = None  # medec-detect: the MEDIQA-CORR run file that was scored
    run_file_hash: str | None = None


# Scale: merges and OpenAI Batch API jobs ---------------------------------------------------------
class WarehouseMerged(Event):
    """Other warehouses' events were unioned into this one (by event id, each chain verified)."""

    event_type = "warehouse_merged"
    sources: list[dict[str, Any]]  # path, events, head_hash, added_events
    added_events: int
    added_blobs: int


class BatchSubmitted(Event):
    """A Batch API job holding these requests exists: a restarted run polls it, never resubmits."""

    event_type = "batch_submitted"
    batch_id: str
    input_file_id: str
    base_url: str | None
    requests: int
    custom_ids: str  # JSON list, one per request: the hash of its request body
    blob_fields = ("custom_ids",)


class BatchFinished(Event):
    """A Batch API job ended and its results were handed to the waiting tasks."""

    event_type = "batch_finished"
    batch_id: str
    status: str  # completed | failed | expired | cancelled
    succeeded: int
    failed: int


# Credentialed sources (MIMIC) ---------------------------------------------------------------------
class DataUseDecision(Event):
    """Whether a credentialed source's records may go to this backend, decided before any call."""

    event_type = "data_use_decision"
    allowed: bool
    backend: str
    base_url: str | None
    host: str | None
    addresses: list[str] = []  # what the host resolved to when the decision was made
    rule: str  # embedded | loopback | allowed_remote_host | refused_remote_host
    message: str


class CohortBuilt(Event):
    """A MIMIC cohort written to disk: the top patients by admission count."""

    event_type = "cohort_built"
    limit: int
    subject_ids: list[int]
    out_path: str
    csv_hash: str
    source_files: dict[str, Any]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls for cls in Event.__subclasses__() if hasattr(cls, "event_type")
}


@dataclass
class Envelope:
    """Where an event belongs. Blank fields are fine for run-level events."""

    run_id: str | None = None
    recipe: str | None = None
    task_key: str | None = None
    stage: str | None = None
    attempt: int | None = None
    parent_event_id: str | None = None


@dataclass
class EventRecord:
    """An event ready for the writer: its row fields plus the blob texts it references."""

    event_type: str
    payload: dict[str, Any]
    envelope: Envelope
    event_id: str = field(default_factory=uuid7)
    created_utc: str = field(default_factory=utc_now)
    blobs: dict[str, str] = field(default_factory=dict)


REDACTED = "[redacted]"


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every occurrence of each secret replaced, however deep in it."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {key: redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secrets) for item in value]
    return value


def make_record(event: Event, envelope: Envelope, secrets: tuple[str, ...] = ()) -> EventRecord:
    """Turn a typed event into a row, moving long texts into content-addressed blobs.

    ``secrets`` (a backend's API keys) are replaced in every text first, blobs included: a
    server that echoes the key in an error message or an answer does not get it logged.
    """
    payload = event.model_dump(mode="json")
    if secrets:
        payload = redact(payload, secrets)
    blobs: dict[str, str] = {}
    for name in event.blob_fields:
        text = payload.pop(name)
        if text is None:
            payload[f"{name}_blob"] = None
            continue
        digest = content_hash(text)
        blobs[digest] = text
        payload[f"{name}_blob"] = digest
    if "messages" in payload:
        stored = []
        for message in payload["messages"]:
            digest = content_hash(message["content"])
            blobs[digest] = message["content"]
            stored.append({"role": message["role"], "content_blob": digest})
        payload["messages"] = stored
    return EventRecord(event.event_type, payload, envelope, blobs=blobs)
