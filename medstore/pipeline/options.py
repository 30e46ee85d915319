"""How a run goes: concurrency, retries, cache, limits and budget.

``RunOptions`` is the one place these defaults live: ``cli.py run`` builds its flags from it
(``medstore.cli.model_options``), and library callers construct it directly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medstore.pipeline.shard import Shard

NOT_ON_CLI = {"cli": False}


@dataclass
class RetryPolicy:
    retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, retry_number: int, exc: BaseException) -> float:
        """Seconds before retry ``retry_number`` (1 for the first): exponential backoff with
        jitter; a server's Retry-After wins when it gives one."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        backoff = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return backoff * (0.5 + random.random() / 2)


class RunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    limit: int | None = Field(None, ge=0, description="Take only the first N source records.")
    concurrency: int = Field(8, ge=1, description="Tasks in flight at once.")
    retries: int = Field(
        3, ge=0, description="Retries on 429, 5xx, timeouts and dropped connections."
    )
    retry_base_delay: float = Field(
        1.0, ge=0, description="First backoff in seconds (doubles each retry; Retry-After wins)."
    )
    retry_max_delay: float = Field(60.0, gt=0, json_schema_extra=NOT_ON_CLI)
    repair_temperature: float = Field(0.30, ge=0, description="Temperature of repair attempts.")
    seed: int | None = Field(None, description="Sampling seed sent with every request.")
    cache: bool = Field(
        True,
        description="Replay requests the log has already answered (--no-cache: always call the "
        "teacher).",
    )
    progress: bool = Field(True, description="Show a progress bar.")
    shard: Shard | None = Field(
        None,
        description="Take only shard i of N (e.g. 0/4) by task-key hash.",
        json_schema_extra={"cli": {"metavar": "i/N"}},
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="Where the tasks run: in this process, or split into shards over Ray actors"
        " (pip install 'medstore[ray]').",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join with --executor ray (e.g. ray://head:10001) "
        "[default: $RAY_ADDRESS, else a local Ray].",
        json_schema_extra={"cli": {"metavar": "ADDR"}},
    )
    workers: int = Field(
        2,
        ge=1,
        description="With --executor ray: the work splits into this many shards, each run by "
        "a Ray actor of its own.",
    )
    rpm: int | None = Field(None, ge=1, description="Most requests per minute to send.")
    tpm: int | None = Field(None, ge=1, description="Most tokens per minute (prompt + max).")
    max_cost: float | None = Field(
        None,
        ge=0,
        description="Stop cleanly before spending more than this many USD.",
        json_schema_extra={"cli": {"metavar": "USD"}},
    )
    max_source_bytes: int = Field(
        1_000_000,
        ge=1_000,
        description="Skip a source record larger than this as JSON (it would go into every "
        "prompt of its task).",
    )
    lease_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a task stays claimed without renewal: runs sharing a warehouse "
        "split the work, and a killed run's tasks are taken over after this.",
    )
    redo: bool = Field(
        False,
        description="Run again the finished tasks judged under other validators or options "
        "(the teacher is called where the log has no answer; add --no-cache to regenerate all).",
    )
    revalidate: bool = Field(
        False,
        description="First judge the finished tasks judged under other validators or options "
        "again from their recorded outputs, with no call (as `cli.py revalidate`).",
    )
    # The optional judge (medstore/pipeline/judge.py): a second model scores every candidate.
    judge_backend: str | None = Field(
        None, description="Judge backend (as --backend); any --judge-* option turns judging on."
    )
    judge_base_url: str | None = Field(None, description="The judge's server URL.")
    judge_model: str | None = Field(
        None, description="The judge's model (a different model than the teacher is best)."
    )
    judge_api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the judge's API key."
    )
    min_judge_score: float | None = Field(
        None,
        ge=1,
        le=5,
        description="Reject a sample the judge scores below this (1-5) [default: record only].",
    )
    # The window --rpm/--tpm count over (shorter in tests).
    rate_window_s: float = Field(60.0, gt=0, json_schema_extra=NOT_ON_CLI)
    # What run_started records as the run's configuration.
    config: dict[str, Any] = Field(default_factory=dict, json_schema_extra=NOT_ON_CLI)

    @model_validator(mode="after")
    def check_executor(self) -> RunOptions:
        if self.executor != "ray" and self.ray_address is not None:
            raise ValueError("--ray-address needs --executor ray")
        if self.executor == "ray" and self.shard is not None:
            raise ValueError("--shard and --executor ray do not go together: Ray shards the run")
        return self

    @field_validator("shard", mode="before")
    @classmethod
    def parse_shard(cls, value: Any) -> Any:
        return Shard.parse(value) if isinstance(value, str) else value

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.retries, self.retry_base_delay, self.retry_max_delay)
