"""`run`'s options come from three pydantic models (the run's, the teacher's, each recipe's):
one default each, an option for another recipe is an error, llm-style `-o key value` works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.llm import BackendOptions, TransientError
from medstore.pipeline.options import RetryPolicy, RunOptions
from medstore.plugins import get_recipe
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers_hierarchical import hierarchical_teacher


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "consult", "--min-entity-preservation", "0.5"],
         "--min-entity-preservation is an option of medec-safe, not consult"),
        (["--recipe", "consult", "--subject-id", "7"],
         "--subject-id is an option of mimic-dialogue, not consult"),
        (["--recipe", "hierarchical", "-o", "subject_id", "7"],
         "--subject-id is an option of mimic-dialogue, not hierarchical"),
        (["--recipe", "hierarchical", "-o", "nope", "1"],
         "hierarchical has no option --nope (its options: --min-preservation)"),
        (["--recipe", "consult", "-o", "nope", "1"],
         "consult has no option --nope (its options: none)"),
        (["--recipe", "hierarchical", "-o", "min_preservation", "2"],
         "--min-preservation: Input should be less than or equal to 1"),
        (["--shard", "3/3"], "--shard '3/3': need 0 <= i < N and N >= 1"),
    ],
)  # fmt: skip
def test_a_wrong_option_is_one_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    db = tmp_path / "w.db"
    result = invoke("run", *args, "--db", str(db))
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"Error: {message}"
    assert not db.exists()


def test_o_option_and_flag_reach_the_recipe_and_the_log(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with serve() as teacher:
        teacher.set_responder(hierarchical_teacher)
        for extra in (["-o", "min-preservation", "0.25"], ["--min-preservation", "0.3"]):
            result = invoke("run", "--recipe", "hierarchical", "--limit", "1", "--db", str(db),
                            "--base-url", teacher.openai_base_url, "--model", "m",
                            "--no-progress", *extra)  # fmt: skip
            assert result.exit_code == 0, result.output
    with Warehouse(db) as warehouse:
        configs = [
            json.loads(row["payload_json"])["config"]
            for row in warehouse.query(
                "SELECT payload_json FROM events WHERE event_type = 'run_started' ORDER BY id"
            )
        ]
    assert [c["recipe_options"] for c in configs] == [
        {"min_preservation": 0.25},
        {"min_preservation": 0.3},
    ]
    # The run's own defaults come from RunOptions, not from click.
    defaults = RunOptions()
    assert configs[0]["concurrency"] == defaults.concurrency
    assert configs[0]["retries"] == defaults.retries
    assert configs[0]["timeout"] == BackendOptions().timeout


def test_help_shows_each_recipes_options_under_its_name() -> None:
    everything = invoke("run", "--help").output
    for recipe in ("hierarchical", "medec-safe", "mimic-dialogue"):
        assert f"Options of recipe {recipe}:" in everything
    assert "Options of recipe consult:" not in everything  # consult has none
    only = invoke("run", "--recipe", "medec-safe", "--help").output
    assert "--min-entity-preservation" in only and "--subject-id" not in only
    # Defaults shown are the models' defaults.
    assert f"[default: {RunOptions().concurrency}]" in everything
    field = get_recipe("medec-safe").Options.model_fields["min_edit_ratio"]
    assert f"[default: {field.default}]" in only


def test_recipe_options_validate_in_the_library_too() -> None:
    recipe_class = get_recipe("mimic-dialogue")
    recipe = recipe_class({"subject_id": 3, "allow_remote_host": ["gpu.example.org"]})
    assert recipe.options.subject_id == 3 and recipe.options.row_cap_labs == 120
    with pytest.raises(ValueError, match="min_preservation"):
        get_recipe("hierarchical")({"min_preservation": -1})


def test_retry_delay_doubles_and_retry_after_wins() -> None:
    policy = RetryPolicy(retries=5, base_delay=1.0, max_delay=6.0)
    plain = TransientError("server_error", "HTTP 503")
    for retry_number, full in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0)):  # capped at max_delay
        assert full / 2 <= policy.delay(retry_number, plain) <= full  # jitter: half to whole
    told = TransientError("rate_limited", "HTTP 429", status=429, retry_after=2.5)
    assert policy.delay(1, told) == 2.5
    assert policy.delay(1, TransientError("rate_limited", "429", retry_after=90)) == 6.0
