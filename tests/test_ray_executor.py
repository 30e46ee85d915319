"""`run --executor ray`: consult over two Ray workers against the fake server; a worker killed
mid-shard is resumed by another actor from its shard log (nothing accepted twice, no answered
request sent twice); the budget cap and the limiter are shared by all workers."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.llm import BackendOptions
from medstore.pipeline.budget import BudgetExhausted, Reservation
from medstore.pipeline.launch import execute, plan_run
from medstore.pipeline.options import RunOptions
from medstore.pipeline.ray_worker import release_lost_claims
from medstore.pipeline.shard import shard_of
from medstore.pipeline.shared_limits import SharedLimits
from medstore.recipes.consult import ConsultRecipe
from medstore.warehouse.events import Envelope, RunFinished, TaskClaimed, make_record
from medstore.warehouse.hashing import utc_after
from medstore.warehouse.store import Warehouse
from medstore.warehouse.writer import GRANTED, HELD, Claim

from .conftest import REPO
from .fakeserver import Reply, serve
from .teachers import consult_teacher, write_scenarios
from .test_consult_run import run_args
from .test_shard_merge import dataset

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAS_RAY, reason="ray not installed (pip install 'medstore[ray]')"
)
TASKS = 12
STAGES = 4


@pytest.fixture(scope="module")
def ray_local():
    import ray

    for attempt in range(3):  # a raylet has 30 s to come up: an overloaded CI box may miss it
        try:
            ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_scenarios(tmp_path / "scenarios.json", TASKS)


class Ledger:
    """The fake server's bill: every chat request, and those answered (paid), by body."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.paid: Counter = Counter()

    def answer(self, request: dict, reply: str | Reply) -> str | Reply:
        body = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        with self.lock:
            self.received += 1
            if not isinstance(reply, Reply) or reply.status == 200:
                self.paid[body] += 1
        return reply


def case_index(request: dict) -> int:
    """Which scenario a consult request is about: its age (30 + i) is in every stage's prompt."""
    text = " ".join(m["content"] for m in request["messages"])
    match = re.search(r"age \((\d+)\)", text) or re.search(r'"age": ?(\d+)', text)
    return int(match.group(1)) - 30


def shard_keys(count: int) -> dict[int, list[int]]:
    recipe = ConsultRecipe()
    owners: dict[int, list[int]] = {}
    for i in range(TASKS):
        owners.setdefault(shard_of(recipe.task_key(f"case-{i:02d}"), count), []).append(i)
    return owners


def ray_run(server, db: Path, source: Path, *extra: str):
    args = run_args(server, db, source, "--executor", "ray", "--workers", "2", *extra)
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def accepted_once(db: Path) -> None:
    with Warehouse(db) as warehouse:
        per_task = warehouse.query(
            "SELECT task_key, count(*) AS n FROM events WHERE event_type = 'sample_accepted'"
            " GROUP BY task_key"
        )
        samples = warehouse.query("SELECT task_key FROM samples")
        assert warehouse.verify().ok
    assert len(per_task) == TASKS and {row["n"] for row in per_task} == {1}
    assert len(samples) == TASKS


@needs_ray
def test_two_workers_accept_every_task_once(ray_local, source, tmp_path) -> None:
    ledger = Ledger()
    with serve() as server:
        server.set_responder(lambda request: ledger.answer(request, consult_teacher(request)))
        result = ray_run(server, tmp_path / "w.db", source)
        assert result.exit_code == 0, result.output
        local = CliRunner().invoke(cli, run_args(server, tmp_path / "local.db", source))
        assert local.exit_code == 0, local.output
    assert f"{TASKS} accepted" in result.output and "2 shard runs merged" in result.output
    accepted_once(tmp_path / "w.db")
    # Every stage of every task was paid once; the local run paid for its own copy.
    assert ledger.received == 2 * TASKS * STAGES
    assert set(ledger.paid.values()) == {2}
    # The merged dataset is the one a local run gives.
    assert dataset(tmp_path / "w.db") == dataset(tmp_path / "local.db")
    for shard in range(2):
        assert (tmp_path / "w.db.shards" / f"shard-{shard}-of-2.db").exists()
    verify = CliRunner().invoke(cli, ["verify", "--db", str(tmp_path / "w.db")])
    assert verify.exit_code == 0, verify.output
    with Warehouse(tmp_path / "w.db") as warehouse:
        runs = warehouse.query(
            "SELECT json_extract(payload_json, '$.config.shard') AS shard FROM events"
            " WHERE event_type = 'run_started' ORDER BY shard"
        )
    assert [run["shard"] for run in runs] == ["0/2", "1/2"]
    # Run again: the warehouse has it all, nothing is sent.
    with serve() as server:
        server.set_responder(consult_teacher)
        again = ray_run(server, tmp_path / "w.db", source)
        assert again.exit_code == 0, again.output
        assert f"{TASKS} already done" in again.output
        assert "0 shard runs merged" in again.output  # nothing left: no worker started
        assert not server.chat_requests()


@needs_ray
def test_killed_worker_is_resumed_without_paying_twice(ray_local, source, tmp_path) -> None:
    db = tmp_path / "w.db"
    victim_shard, victim_cases = max(shard_keys(2).items(), key=lambda item: len(item[1]))
    assert len(victim_cases) >= 2
    log = db.with_name("w.db.shards") / f"shard-{victim_shard}-of-2.db"
    ledger = Ledger()
    seen = Counter()
    killed = threading.Event()

    def responder(request: dict) -> str | Reply:
        if case_index(request) in victim_cases and not killed.is_set():
            seen["victim"] += 1
            if seen["victim"] == STAGES + 2:  # the second task's dialogue: mid-shard
                wait_for_responses(log, STAGES + 1)  # what it was answered is in its log
                kill_worker(ray_local, victim_shard)
                killed.set()
                return ledger.answer(request, Reply("gone", status=503))
        return ledger.answer(request, consult_teacher(request))

    with serve() as server:
        server.set_responder(responder)
        result = ray_run(server, db, source, "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert killed.is_set()
    assert "worker lost" in result.output and "workers lost (their shards resumed): 1" in (
        result.output
    )
    accepted_once(db)
    # Every request answered was answered once; only the one cut off by the kill came again.
    assert sum(ledger.paid.values()) == len(ledger.paid) == TASKS * STAGES
    assert ledger.received == TASKS * STAGES + 1
    assert re.search(r"[1-9]\d* cache replays", result.output)  # the first stage, from the log


def wait_for_responses(log: Path, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            conn = sqlite3.connect(f"file:{log}?mode=ro", uri=True)
            try:
                got = conn.execute(
                    "SELECT count(*) FROM events WHERE event_type = 'llm_response'"
                ).fetchone()[0]
            except sqlite3.OperationalError:
                got = 0
            finally:
                conn.close()
            if got >= n:
                return
        time.sleep(0.02)
    raise AssertionError(f"{log}: fewer than {n} responses logged")


def kill_worker(ray, shard: int) -> None:
    """ray.kill the actor running ``shard`` and wait until it is gone."""
    names = [n for n in ray.util.list_named_actors() if n.endswith(f"-shard-{shard}-try-0")]
    assert len(names) == 1, names
    actor = ray.get_actor(names[0])
    ray.kill(actor, no_restart=True)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.__ray_ready__.remote(), timeout=30)


@needs_ray
def test_budget_cap_holds_across_workers(ray_local, source, tmp_path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake-model": [100.0, 100.0]}))
    with serve() as server:
        server.set_responder(consult_teacher)
        local = CliRunner().invoke(
            cli,
            run_args(server, tmp_path / "one.db", source, "--limit", "1", "--prices", str(prices)),
        )
        assert local.exit_code == 0, local.output
        per_task = spent(tmp_path / "one.db")
        cap = round(per_task * 3.5, 4)  # room for ~3 tasks in all: less than one worker's share
        result = ray_run(
            server,
            tmp_path / "w.db",
            source,
            *("--prices", str(prices), "--max-cost", str(cap), "--concurrency", "1"),
        )
    assert result.exit_code == 0, result.output
    assert "stopped before passing --max-cost" in result.output
    total = spent(tmp_path / "w.db")
    assert 0 < total <= cap
    with Warehouse(tmp_path / "w.db") as warehouse:
        accepted = len(warehouse.query("SELECT 1 FROM samples"))
        failed = warehouse.query(
            "SELECT count(*) AS n FROM events WHERE event_type = 'task_failed'"
            " AND json_extract(payload_json, '$.reason') = 'budget_exhausted'"
        )[0]["n"]
    assert 1 <= accepted < TASKS and failed >= 1


@needs_ray
def test_rpm_holds_across_workers(ray_local, source, tmp_path) -> None:
    """Two workers under --rpm 8 against a server that allows 8 per window: no 429, where each
    worker counting alone would send 16 per window."""
    backend = BackendOptions(base_url=None, model="fake-model", timeout=10)
    options = RunOptions(
        executor="ray", workers=2, concurrency=6, rpm=8, rate_window_s=0.5, progress=False
    )
    with serve(rate_limit=(8, 0.5)) as server:
        server.set_responder(consult_teacher)
        backend = backend.model_copy(update={"base_url": server.openai_base_url})
        plan = plan_run(ConsultRecipe(), backend, options, source=str(source))
        result, ran = execute(plan, str(tmp_path / "w.db"))
        assert server.rate_limited_count == 0
        assert len(server.admitted_times) == TASKS * STAGES
    assert result.counts["accepted"] == TASKS and len(ran.shard_runs) == 2
    assert ran.totals["sent"] == TASKS * STAGES and ran.totals["in_flight"] == 0


def spent(db: Path) -> float:
    with Warehouse(db) as warehouse:
        return warehouse.query("SELECT coalesce(sum(cost_usd), 0) AS c FROM llm_calls")[0]["c"]


def test_shared_limits_free_a_dead_workers_slots_and_count_its_reservations() -> None:
    async def scenario() -> SharedLimits:
        limits = SharedLimits(rpm=None, tpm=None, max_concurrency=2, window_s=1.0, max_cost=1.0)
        await limits.acquire("a", 10)
        await limits.acquire("b", 10)
        assert limits.hold("a", 0.4) is None and limits.hold("b", 0.4) is None
        assert "budget (all workers)" in limits.hold("b", 0.4)  # 0.8 held of 1.0
        limits.forget("a")  # dead mid-call: its slot is free, its 0.4 counted as spent
        await asyncio.wait_for(limits.acquire("c", 10), 1)
        limits.release("a", 10, True, None, None)  # a late word from the dead: ignored
        limits.settle("b", 0.4, 0.1)
        return limits

    limits = asyncio.run(scenario())
    assert limits.totals()["spent_usd"] == pytest.approx(0.5)
    assert limits.totals()["reserved_usd"] == 0 and limits.limiter.in_flight == 2
    assert Reservation(0.1).amount == 0.1 and issubclass(BudgetExhausted, Exception)


def test_an_heir_on_another_node_need_not_wait_out_a_dead_workers_claims(tmp_path) -> None:
    far = {"host": "another-node", "pid": 1}  # not this machine: its process cannot be looked up
    with Warehouse(tmp_path / "shard.db") as warehouse:
        warehouse.append(
            [
                (
                    TaskClaimed(owner="dead", expires_utc=utc_after(300), **far),
                    claim_of("dead", "k1"),
                ),
                (
                    TaskClaimed(owner="done", expires_utc=utc_after(300), **far),
                    claim_of("done", "k2"),
                ),
                (RunFinished(status="completed", counts={}), Envelope("done")),
            ]
        )

        def decide(key: str) -> str:
            record = make_record(
                TaskClaimed(owner="heir", expires_utc=utc_after(300)), claim_of("heir", key)
            )
            return Claim(record, "heir", Future()).decide(warehouse.conn)

        assert decide("k1") == HELD
        assert release_lost_claims(warehouse) == 1
        assert decide("k1") == GRANTED  # the dead run's claim, released by its heir
        assert decide("k2") == HELD  # a run that finished is no worker lost
        assert release_lost_claims(warehouse) == 0
        assert warehouse.verify().ok


def claim_of(run: str, key: str) -> Envelope:
    return Envelope(run, "consult", key)


def test_missing_ray_is_one_line(source, tmp_path) -> None:
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "from medstore.cli import cli\n"
        "cli(['run', '--source', sys.argv[1], '--db', sys.argv[2], '--executor', 'ray',"
        " '--base-url', 'http://127.0.0.1:9/v1', '--model', 'm', '--no-progress'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(source), str(tmp_path / "w.db")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: --executor ray needs Ray: pip install 'medstore[ray]'"
    assert not (tmp_path / "w.db").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--executor", "ray", "--shard", "0/2"], "--shard and --executor ray do not go together"),
        (["--executor", "ray", "--workers", "0"], "--workers"),
    ],
)
def test_bad_executor_options_are_one_line(extra, message, source, tmp_path) -> None:
    args = ["run", "--source", str(source), "--db", str(tmp_path / "w.db"), *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "w.db").exists()
