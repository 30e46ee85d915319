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
