"""`revalidate` and resume's version check, against a real local fake teacher and a real
warehouse file: new verdicts from recorded outputs with zero calls, samples leaving and joining
`samples` and exports with their reasons, and the one line resume prints when the validators or
options changed since a task ended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.checks.structure import check_structure
from medstore.cli import cli
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers_hierarchical import good_rewrite, quoted_answer, sentences

LIMIT = "4"
STRICT = "0.95"


def lossy_teacher(request: dict) -> str:
    """A valid rewrite; of an answer with an odd number of sentences it drops the last one:
    enough for the default 60% of key terms kept, not for a strict --min-preservation."""
    parts = sentences(quoted_answer(request))
    return good_rewrite(" ".join(parts[:-1] if len(parts) % 2 else parts))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_args(server, db: Path, *extra: str) -> list[str]:
    return [
        "run", "--recipe", "hierarchical", "--base-url", server.openai_base_url,
        "--model", "fake-model", "--db", str(db), "--retry-base-delay", "0", "--no-progress",
        "--limit", LIMIT, *extra,
    ]  # fmt: skip


def dataset(db: Path) -> dict[str, dict]:
    with Warehouse(db, readonly=True) as warehouse:
        rows = warehouse.query("SELECT sample_id, sample_json FROM samples")
    return {row["sample_id"]: json.loads(row["sample_json"]) for row in rows}


def outcomes(db: Path) -> dict[str, dict]:
    with Warehouse(db, readonly=True) as warehouse:
        return {row["task_key"]: row for row in warehouse.query("SELECT * FROM task_outcomes")}


def exported_ids(db: Path, out: Path) -> set[str]:
    result = invoke("export", "--recipe", "hierarchical", "--format", "jsonl", "--out", str(out),
                    "--db", str(db), "--split-ratio", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    return {row["sample_id"] for row in rows}


@pytest.fixture
def server():
    with serve() as running:
        running.set_responder(lossy_teacher)
        yield running


def test_stricter_option_sends_samples_out_and_relaxed_brings_them_back_with_no_call(
    server, db_path: Path, tmp_path: Path
) -> None:
    first = invoke(*run_args(server, db_path))
    assert first.exit_code == 0 and f"{LIMIT} accepted, 0 rejected" in first.output, first.output
    calls = server.request_count
    before = dataset(db_path)
    weak = {
        sample_id
        for sample_id, sample in before.items()
        if check_structure(sample["Doctor"], sample["_original_doctor"]).preservation
        < float(STRICT)
    }
    assert 0 < len(weak) < len(before), "some rewrites must lose terms, some not"
    assert exported_ids(db_path, tmp_path / "before") == set(before)

    strict = invoke("revalidate", "--recipe", "hierarchical", "--min-preservation", STRICT,
                    "--db", str(db_path))  # fmt: skip
    assert strict.exit_code == 0, strict.output
    assert f"{len(weak)} left the dataset, 0 joined" in strict.output
    assert "with 0 LLM calls" in strict.output
    assert server.request_count == calls  # nothing was sent
    assert set(dataset(db_path)) == set(before) - weak
    assert exported_ids(db_path, tmp_path / "strict") == set(before) - weak
    left = [row for row in outcomes(db_path).values() if row["state"] == "rejected"]
    assert len(left) == len(weak)
    for row in left:  # the reason names the version and the failed check, for status and pages
        assert "fails validator version vv-" in row["reason"] and "no repair 1" in row["reason"]
        assert row["message"].startswith("preservation: ")

    relaxed = invoke("revalidate", "--recipe", "hierarchical", "--db", str(db_path))
    assert relaxed.exit_code == 0, relaxed.output
    assert f"{len(weak)} joined" in relaxed.output
    assert server.request_count == calls
    assert dataset(db_path) == before  # the same samples, the same ids
    assert exported_ids(db_path, tmp_path / "relaxed") == set(before)
    verified = invoke("verify", "--db", str(db_path))
    assert verified.exit_code == 0, verified.output  # the derived tables agree with the log


def test_every_verdict_carries_the_validator_version_it_was_judged_under(
    server, db_path: Path
) -> None:
    assert invoke(*run_args(server, db_path)).exit_code == 0
    strict = invoke("revalidate", "--recipe", "hierarchical", "--min-preservation", STRICT,
                    "--db", str(db_path), "--json")  # fmt: skip
    version = json.loads(strict.output)[0]["validator_version"]
    with Warehouse(db_path, readonly=True) as warehouse:
        rows = warehouse.query(
            "SELECT r.command, e.event_type,"
            " json_extract(e.payload_json, '$.validator_version') AS version,"
            " json_extract(e.payload_json, '$.revalidated') AS revalidated"
            " FROM events e JOIN (SELECT run_id, json_extract(payload_json, '$.command') AS"
            " command FROM events WHERE event_type = 'run_started') r USING (run_id)"
            " WHERE e.event_type IN ('validation_verdict', 'sample_accepted', 'sample_rejected')"
        )
    by_command: dict[str, set] = {}
    for row in rows:
        by_command.setdefault(row["command"], set()).add(row["version"])
        if row["command"] == "revalidate" and row["event_type"] != "validation_verdict":
            assert row["revalidated"] == 1
    assert by_command["revalidate"] == {version}
    assert len(by_command["run"]) == 1 and None not in by_command["run"]
    assert by_command["run"] != {version}  # another threshold: another version


def test_resume_says_in_one_line_that_validators_changed_and_applies_on_request(
    server, db_path: Path
) -> None:
    assert invoke(*run_args(server, db_path)).exit_code == 0
    calls = server.request_count
    again = invoke(*run_args(server, db_path, "--min-preservation", STRICT))
    assert again.exit_code == 0, again.output
    assert f"{LIMIT} already done" in again.output
    stale = [line for line in again.output.splitlines() if "--revalidate" in line]
    assert len(stale) == 1 and "--redo to regenerate" in stale[0]
    assert stale[0].startswith(f"{LIMIT} of the already done were judged under other validators")
    same = invoke(*run_args(server, db_path))  # the original options: nothing is stale
    assert "--revalidate" not in same.output

    applied = invoke(*run_args(server, db_path, "--min-preservation", STRICT, "--revalidate"))
    assert applied.exit_code == 0, applied.output
    assert "task(s) judged again from the log with 0 LLM calls" in applied.output
    assert server.request_count == calls
    settled = invoke(*run_args(server, db_path, "--min-preservation", STRICT))
    assert "--revalidate" not in settled.output and f"{LIMIT} already done" in settled.output

    # --redo runs the stale tasks again: this time under the old threshold they are stale.
    redo = invoke(*run_args(server, db_path, "--redo"))
    assert redo.exit_code == 0, redo.output
    assert "0 already done" in redo.output and f"{LIMIT} cache replays" in redo.output
    assert "--revalidate" not in redo.output


def test_redo_asks_the_teacher_for_the_repairs_the_log_lacks(server, db_path: Path) -> None:
    assert invoke(*run_args(server, db_path)).exit_code == 0
    calls = server.request_count
    redo = invoke(*run_args(server, db_path, "--min-preservation", STRICT, "--redo"))
    assert redo.exit_code == 0, redo.output
    assert server.request_count > calls  # repairs quoting the stricter violation went out
    repairs = server.chat_requests()[calls:]
    assert all(r.json["messages"][-2]["role"] == "assistant" for r in repairs)


def test_revalidate_refuses_bad_input_in_one_line(server, db_path: Path, tmp_path: Path) -> None:
    missing = invoke("revalidate", "--db", str(tmp_path / "none.db"))
    assert missing.exit_code == 1 and "no such warehouse" in missing.output
    assert invoke(*run_args(server, db_path)).exit_code == 0
    unknown = invoke("revalidate", "--recipe", "nope", "--db", str(db_path))
    assert unknown.exit_code == 1 and "unknown recipe 'nope'" in unknown.output
    foreign = invoke("revalidate", "--recipe", "consult", "--min-preservation", "0.7",
                     "--db", str(db_path))  # fmt: skip
    assert foreign.exit_code == 1
    assert "--min-preservation is an option of hierarchical, not consult" in foreign.output
    against = invoke("revalidate", "--recipe", "hierarchical", "--against",
                     str(tmp_path / "gone.jsonl"), "--db", str(db_path))  # fmt: skip
    assert against.exit_code == 1 and "no such evaluation file" in against.output
    loose = invoke("revalidate", "--min-preservation", "0.7", "--db", str(db_path))
    assert loose.exit_code == 2 and "recipe options need --recipe" in loose.output
    for result in (missing, unknown, foreign, against):
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_unchanged_validators_judge_nothing_unless_all(server, db_path: Path) -> None:
    assert invoke(*run_args(server, db_path)).exit_code == 0
    calls = server.request_count
    nothing = invoke("revalidate", "--recipe", "hierarchical", "--db", str(db_path))
    assert "0 task(s) judged again" in nothing.output
    everything = invoke("revalidate", "--recipe", "hierarchical", "--all", "--db", str(db_path))
    assert f"{LIMIT} task(s) judged again" in everything.output
    assert f"{LIMIT} unchanged" in everything.output
    assert server.request_count == calls


def test_multi_stage_recipes_revalidate_unchanged_from_their_log(tmp_path: Path) -> None:
    """consult (four stages, JSON schemas in the server's dialect) and medec-cot: every task
    judged again with --all finds its recorded answers and keeps its sample, with no call."""
    from .teachers import consult_teacher, write_scenarios
    from .teachers_medec import medec_teacher
    from .test_medec_source import pair_row, write_medec

    sources = {
        "consult": (consult_teacher, write_scenarios(tmp_path / "s.json", 3)),
        "medec-cot": (medec_teacher, write_medec(tmp_path / "m.csv", [pair_row("ms-x-0")])),
    }
    for recipe, (teacher, source) in sources.items():
        db = tmp_path / f"{recipe}.db"
        with serve() as server:
            server.set_responder(teacher)
            ran = invoke("run", "--recipe", recipe, "--source", str(source), "--base-url",
                         server.openai_base_url, "--model", "fake", "--db", str(db),
                         "--no-progress")  # fmt: skip
            assert ran.exit_code == 0 and " 0 rejected" in ran.output, ran.output
            before, calls = dataset(db), server.request_count
            again = invoke("revalidate", "--recipe", recipe, "--all", "--db", str(db), "--json")
            assert server.request_count == calls
        counts = json.loads(again.output)[0]["counts"]
        assert counts["judged"] == counts["unchanged"] > 0, counts
        assert set(dataset(db)) == set(before)  # the same sample ids (consult's created_at moves)
