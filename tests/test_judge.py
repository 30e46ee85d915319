"""The optional judge stage against two real local servers: a teacher and a judge. Scores are
recorded, --min-judge-score gates acceptance with the judge's reasons, judge calls are events
(model, cost, cache) and a resumed run asks the judge nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.cli import cli
from medstore.warehouse.store import Warehouse

from .fakeserver import Reply, serve
from .teachers import consult_teacher, first_user_message, write_scenarios


def judge_reply(request: dict) -> str:
    """Scores case-01 2 (a wrong code), every other case 5."""
    text = first_user_message(request)
    assert text.startswith("Review this generated consultation sample")
    bad = '"case_id": "case-01"' in text
    score = 2 if bad else 5
    return json.dumps(
        {
            "clinical_correctness": score,
            "consistency": 5,
            "completeness": 4,
            "score": score,
            "reasons": ["K21.9 does not fit the case"] if bad else ["sound and complete"],
        }
    )


def run(db: Path, source: Path, teacher, judge, *extra: str):
    args = [
        "run", "--recipe", "consult", "--source", str(source), "--base-url",
        teacher.openai_base_url, "--model", "teacher-m", "--judge-base-url",
        judge.openai_base_url, "--judge-model", "judge-m", "--db", str(db),
        "--retry-base-delay", "0", "--no-progress", *extra,
    ]  # fmt: skip
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_judge_scores_gate_and_resume(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 3)
    db = tmp_path / "judged.db"
    with serve() as teacher, serve() as judge:
        teacher.set_responder(consult_teacher)
        judge.set_responder(judge_reply)
        result = run(db, source, teacher, judge, "--min-judge-score", "4")
        assert result.exit_code == 0, result.output
        assert "2 accepted, 1 rejected" in result.output
        assert len(judge.chat_requests()) == 3
        assert all(r.json["model"] == "judge-m" for r in judge.chat_requests())
        assert all(r.json["model"] == "teacher-m" for r in teacher.chat_requests())
        # Resume: every task is done, the judge is not asked again.
        again = run(db, source, teacher, judge, "--min-judge-score", "4")
        assert "3 already done" in again.output and len(judge.chat_requests()) == 3
    with Warehouse(db) as warehouse:
        rejected = warehouse.query(
            "SELECT task_key, payload_json FROM events WHERE event_type = 'sample_rejected'"
        )
        requests = warehouse.query(
            "SELECT json_extract(payload_json, '$.model') AS model FROM events"
            " WHERE event_type = 'llm_request' AND stage = 'judge'"
        )
    assert [row["task_key"] for row in rejected] == ["consult:case-01:v1"]
    assert "K21.9 does not fit the case" in rejected[0]["payload_json"]
    assert {row["model"] for row in requests} == {"judge-m"} and len(requests) == 3
    report = CliRunner().invoke(cli, ["report", "--recipe", "consult", "--db", str(db), "--json"])
    figures = json.loads(report.output)
    assert figures["judge_scores"] == [
        {"score": 2, "samples": 1, "passed": 0},
        {"score": 5, "samples": 2, "passed": 2},
    ]
    assert {"gate": "judge", "passed": "67%", "tasks_failed": 1, "rejected": 1, "repaired": 0} in (
        figures["gates"]
    )


def test_judge_records_only_without_a_minimum_and_a_failed_judge_call_resumes(
    tmp_path: Path,
) -> None:
    """No --min-judge-score: scores are recorded, nothing is rejected for them. A judge that
    fails (500s past the retries) fails the task; the next run redoes it, replaying the
    teacher's four answers from the log and asking the judge once."""
    source = write_scenarios(tmp_path / "scenarios.json", 2)
    db = tmp_path / "a.db"
    down = {"on": True}

    def flaky_judge(request: dict) -> str | Reply:
        if down["on"] and '"case_id": "case-00"' in first_user_message(request):
            return Reply("judge overloaded", status=500)
        return judge_reply(request)

    with serve() as teacher, serve() as judge:
        teacher.set_responder(consult_teacher)
        judge.set_responder(flaky_judge)
        first = run(db, source, teacher, judge, "--retries", "0")
        assert "1 accepted, 0 rejected, 1 failed" in first.output, first.output
        teacher_calls = len(teacher.chat_requests())
        down["on"] = False
        second = run(db, source, teacher, judge)
        assert "1 accepted, 0 rejected, 0 failed, 1 already done, 4 cache replays" in (
            second.output
        ), second.output
        assert len(teacher.chat_requests()) == teacher_calls  # the teacher is not asked again
        assert len(judge.chat_requests()) == 3  # case-01 once, case-00 failed once then once
    report = CliRunner().invoke(cli, ["report", "--recipe", "consult", "--db", str(db), "--json"])
    assert json.loads(report.output)["judge_scores"] == [
        {"score": 2, "samples": 1, "passed": 1},
        {"score": 5, "samples": 1, "passed": 1},
    ]


def test_a_judge_that_answers_junk_rejects_with_the_gate(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 1)
    db = tmp_path / "junk-judge.db"
    junk = {
        "clinical_correctness": 5,
        "consistency": 5,
        "completeness": 5,
        "score": 5,
        "reasons": ["]]"],
    }
    with serve() as teacher, serve() as judge:
        teacher.set_responder(consult_teacher)
        judge.set_responder(lambda request: json.dumps(junk))
        result = run(db, source, teacher, judge, "--min-judge-score", "3")
        assert "0 accepted, 1 rejected" in result.output
        assert len(judge.chat_requests()) == 2  # the answer and its one repair
    with Warehouse(db) as warehouse:
        reason = warehouse.query(
            "SELECT json_extract(payload_json, '$.reason') AS r FROM events"
            " WHERE event_type = 'sample_rejected'"
        )[0]["r"]
    assert reason.startswith("judge: invalid after 1 repairs")


def test_a_remote_judge_never_sees_credentialed_data(tmp_path: Path) -> None:
    """The data-use guard decides for the judge too: a loopback teacher is allowed, a remote
    judge refused, before any call."""
    from medstore.pipeline.data_use import DataUseRefused
    from medstore.pipeline.runner import Runner
    from medstore.recipes.mimic_dialogue import MimicDialogueRecipe

    from .test_mimic_run import StubBackend

    teacher = StubBackend("m", "http://127.0.0.1:9/v1")
    judge = StubBackend("j", "http://198.51.100.7:9/v1")
    with Warehouse(tmp_path / "guard.db") as warehouse:
        runner = Runner(warehouse, MimicDialogueRecipe(), teacher, judge=judge)
        with pytest.raises(DataUseRefused, match=r"198\.51\.100\.7"):
            runner.check_data_use()
        rules = warehouse.query(
            "SELECT json_extract(payload_json, '$.rule') AS rule FROM events"
            " WHERE event_type = 'data_use_decision' ORDER BY id"
        )
    assert [row["rule"] for row in rules] == ["loopback", "refused_remote_host"]


def graded_judge(request: dict) -> str:
    """Scores case-00 3, case-01 4, case-02 5."""
    text = first_user_message(request)
    score = next(s for case, s in (("case-00", 3), ("case-01", 4), ("case-02", 5)) if case in text)
    return json.dumps(
        {
            "clinical_correctness": score,
            "consistency": score,
            "completeness": score,
            "score": score,
            "reasons": [f"case scored {score}"],
        }
    )


def accepted_cases(db: Path) -> set[str]:
    with Warehouse(db, readonly=True) as warehouse:
        rows = warehouse.query("SELECT task_key FROM samples WHERE recipe = 'consult'")
    return {row["task_key"].split(":")[1] for row in rows}


def test_a_changed_min_judge_score_is_stale_on_resume_and_revalidate_applies_it_with_no_call(
    tmp_path: Path,
) -> None:
    """The threshold is part of the validator version: a resume under another one says so in
    one line, and `revalidate` (or `run --revalidate`) gates again on the judge's recorded
    scores: not one request to the teacher or the judge."""
    source = write_scenarios(tmp_path / "scenarios.json", 3)
    db = tmp_path / "graded.db"
    with serve() as teacher, serve() as judge:
        teacher.set_responder(consult_teacher)
        judge.set_responder(graded_judge)
        first = run(db, source, teacher, judge, "--min-judge-score", "3")
        assert "3 accepted, 0 rejected" in first.output, first.output
        chats = (len(teacher.chat_requests()), len(judge.chat_requests()))
        assert chats[1] == 3

        resumed = run(db, source, teacher, judge, "--min-judge-score", "4")
        stale = [line for line in resumed.output.splitlines() if "other validators" in line]
        assert stale == [
            stale[0]  # one line, with the version and what to do
        ] and stale[0].startswith("3 of the already done were judged under other validators")
        assert "--revalidate to apply them (no calls), --redo to regenerate" in stale[0]
        assert "3 already done" in resumed.output
        assert (len(teacher.chat_requests()), len(judge.chat_requests())) == chats
        calls = (teacher.request_count, judge.request_count)  # every request, /models too

        again = invoke_cli("revalidate", "--recipe", "consult", "--min-judge-score", "4",
                           "--db", str(db))  # fmt: skip
        assert again.exit_code == 0, again.output
        assert "3 task(s) judged again from the log with 0 LLM calls: 2 unchanged, 1 left" in (
            again.output
        ), again.output
        assert "left: consult:case-00:v1: judge: score 3 below 4" in again.output
        assert (teacher.request_count, judge.request_count) == calls
        assert accepted_cases(db) == {"case-01", "case-02"}

        # The versions agree now: a resume under the same threshold has nothing stale.
        same = run(db, source, teacher, judge, "--min-judge-score", "4")
        assert "other validators" not in same.output and "3 already done" in same.output
        # `run --revalidate` applies the run's own judge and threshold first.
        stricter = run(db, source, teacher, judge, "--min-judge-score", "5", "--revalidate")
        assert stricter.exit_code == 0, stricter.output
        assert "2 unchanged, 1 left the dataset" in stricter.output, stricter.output
        assert (len(teacher.chat_requests()), len(judge.chat_requests())) == chats
        calls = (teacher.request_count, judge.request_count)
        assert accepted_cases(db) == {"case-02"}

        # Another judge's scores are not in the log: judging under it would take a call.
        other = invoke_cli("revalidate", "--recipe", "consult", "--min-judge-score", "3",
                           "--judge-model", "other-judge", "--db", str(db))  # fmt: skip
        assert "0 unchanged, 0 left the dataset, 0 joined, 0 changed, 3 unresolved" in (
            other.output
        ), other.output
        assert "stage judge would need a call" in other.output
        assert (teacher.request_count, judge.request_count) == calls
        assert accepted_cases(db) == {"case-02"}

        # Without a threshold the judge gates nothing: the options given now apply.
        relaxed = invoke_cli("revalidate", "--recipe", "consult", "--db", str(db))
        assert "1 unchanged, 0 left the dataset, 2 joined" in relaxed.output, relaxed.output
        assert (teacher.request_count, judge.request_count) == calls
    assert accepted_cases(db) == {"case-00", "case-01", "case-02"}
    report = invoke_cli("report", "--recipe", "consult", "--db", str(db), "--json")
    # Each task's latest judge verdict: the scores once each, the passes under threshold 5.
    assert json.loads(report.output)["judge_scores"] == [
        {"score": 3, "samples": 1, "passed": 0},
        {"score": 4, "samples": 1, "passed": 0},
        {"score": 5, "samples": 1, "passed": 1},
    ]


def test_min_judge_score_without_judge_scores_is_a_one_line_error(tmp_path: Path) -> None:
    source = write_scenarios(tmp_path / "scenarios.json", 1)
    db = tmp_path / "unjudged.db"
    with serve() as teacher:
        teacher.set_responder(consult_teacher)
        args = ["run", "--recipe", "consult", "--source", str(source), "--base-url",
                teacher.openai_base_url, "--model", "teacher-m", "--db", str(db),
                "--retry-base-delay", "0", "--no-progress"]  # fmt: skip
        no_judge = invoke_cli(*args, "--min-judge-score", "3")
        assert no_judge.exit_code != 0 and teacher.request_count == 0
        assert "--min-judge-score needs a judge: give --judge-base-url" in no_judge.output
        assert invoke_cli(*args).exit_code == 0
        calls = teacher.request_count
        result = invoke_cli("revalidate", "--recipe", "consult", "--min-judge-score", "3",
                            "--db", str(db))  # fmt: skip
        assert teacher.request_count == calls
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: --min-judge-score: the log holds no judge scores of consult (run it with "
        "--judge-base-url/--judge-model first)"
    )
    bad = invoke_cli("revalidate", "--recipe", "consult", "--min-judge-score", "7", "--db", str(db))
    assert bad.exit_code != 0 and "--min-judge-score" in bad.output


def invoke_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)
