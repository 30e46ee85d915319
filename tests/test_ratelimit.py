"""The rate limiter: sliding-window RPM/TPM limits that are never exceeded, and adaptive
concurrency that backs off on 429 + Retry-After and grows back on success."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from medstore.llm.openai_backend import OpenAIBackend
from medstore.pipeline.options import RunOptions
from medstore.pipeline.ratelimit import RateLimiter
from medstore.pipeline.runner import Runner
from medstore.recipes.consult import ConsultRecipe
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers import consult_teacher
from .test_consult_run import write_scenarios


def most_in_any_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


async def send_all(limiter: RateLimiter, n: int, tokens: int = 0) -> list[float]:
    sent: list[float] = []

    async def one() -> None:
        await limiter.acquire(tokens)
        sent.append(time.monotonic())
        await asyncio.sleep(0.005)
        limiter.release(tokens)

    await asyncio.gather(*(one() for _ in range(n)))
    return sent


def test_rpm_is_never_exceeded_in_any_window() -> None:
    limiter = RateLimiter(rpm=10, max_concurrency=50, window_s=0.3)
    started = time.monotonic()
    sent = asyncio.run(send_all(limiter, 35))
    assert len(sent) == 35
    assert most_in_any_window(sent, 0.3) == 10
    assert time.monotonic() - started >= 0.9  # 35 sends need three full windows after the first


def test_tpm_counts_tokens() -> None:
    limiter = RateLimiter(tpm=300, max_concurrency=50, window_s=0.25)
    sent = asyncio.run(send_all(limiter, 9, tokens=100))
    assert most_in_any_window(sent, 0.25) == 3


def test_a_request_larger_than_the_tpm_limit_still_goes_alone() -> None:
    limiter = RateLimiter(tpm=50, max_concurrency=4, window_s=0.1)
    sent = asyncio.run(send_all(limiter, 2, tokens=80))
    assert most_in_any_window(sent, 0.1) == 1


def test_429_halves_concurrency_and_pauses_for_retry_after() -> None:
    async def scenario() -> tuple[float, RateLimiter]:
        limiter = RateLimiter(max_concurrency=8)
        for _ in range(8):
            await limiter.acquire()
        limiter.release(ok=False, status=429, retry_after=0.2)
        assert limiter.limit == 4
        for _ in range(7):
            limiter.release()
        started = time.monotonic()
        await limiter.acquire()  # no call in flight, but the server asked for 0.2 s of quiet
        waited = time.monotonic() - started
        limiter.release()
        return waited, limiter

    waited, limiter = asyncio.run(scenario())
    assert waited >= 0.19
    assert limiter.stats.congestion_signals == 1


def test_concurrency_grows_back_after_successes_and_never_exceeds_the_limit() -> None:
    async def scenario() -> tuple[RateLimiter, int]:
        limiter = RateLimiter(max_concurrency=6)
        limiter.limit = 1
        peak = 0

        async def one() -> None:
            nonlocal peak
            await limiter.acquire()
            peak = max(peak, limiter.in_flight)
            assert limiter.in_flight <= limiter.limit
            await asyncio.sleep(0.002)
            limiter.release()

        await asyncio.gather(*(one() for _ in range(60)))
        return limiter, peak

    limiter, peak = asyncio.run(scenario())
    assert limiter.limit == 6
    assert peak == 6


def test_timeouts_and_5xx_do_not_count_as_success() -> None:
    async def scenario() -> RateLimiter:
        limiter = RateLimiter(max_concurrency=4)
        limiter.limit = 2
        for status in (None, 500, None, 500):
            await limiter.acquire()
            limiter.release(ok=False, status=status)
        return limiter

    limiter = asyncio.run(scenario())
    assert limiter.limit == 2 and limiter.stats.congestion_signals == 0


def run_consult(server, db: Path, source: Path, **options) -> Runner:
    backend = OpenAIBackend("fake-model", server.openai_base_url, timeout=10)
    with Warehouse(db) as warehouse:
        runner = Runner(
            warehouse,
            ConsultRecipe(),
            backend,
            RunOptions(progress=False, retries=6, retry_base_delay=0, **options),
        )
        asyncio.run(runner.run(str(source)))
    return runner


def test_a_run_under_rpm_never_meets_the_servers_limit(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 6)  # 24 calls
    with serve(rate_limit=(8, 0.5)) as server:
        server.set_responder(consult_teacher)
        runner = run_consult(
            server, tmp_path / "w.db", source, concurrency=6, rpm=8, rate_window_s=0.5
        )
        assert server.rate_limited_count == 0
        assert len(server.admitted_times) == 24
    assert runner.counts["accepted"] == 6


def test_without_limits_adaptive_concurrency_rides_out_a_429_storm(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 6)
    with serve(rate_limit=(4, 0.3)) as server:
        server.set_responder(consult_teacher)
        runner = run_consult(server, tmp_path / "w.db", source, concurrency=8)
        assert server.rate_limited_count > 0
    assert runner.counts["accepted"] == 6
    assert runner.limiter.stats.congestion_signals == server.rate_limited_count
    assert runner.limiter.stats.lowest_limit < 8


@pytest.mark.parametrize("rpm", [0, -1])
def test_limits_must_be_positive(rpm: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rpm=rpm)
