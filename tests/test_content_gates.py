"""Content gates end to end: a real fake teacher scripts one junk reply per gate and the
warehouse's verdict events name that gate and field; junk teachers get nothing accepted in any
recipe while the good teachers keep at least 80 %; and the embedded model's known junk shapes
as unit cases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from medstore.checks.gates import GATES, check_gates
from medstore.cli import cli
from medstore.recipes.consult import (
    DIALOGUE_GATES,
    EXPERT_GATES,
    PROFILE_GATES,
    TEXT_GATES,
    Dialogue,
    ExpertOutput,
    PatientProfile,
)
from medstore.warehouse.store import Warehouse

from .fakeserver import serve
from .teachers import (
    DIALOGUE,
    EXPERT,
    REASONING,
    consult_stage,
    consult_teacher,
    first_user_message,
    profile_reply,
    write_scenarios,
)
from .teachers_hierarchical import hierarchical_teacher
from .teachers_junk import (
    FOUR_TURNS,
    JUNK_DIALOGUE,
    JUNK_EXPERT,
    LOOP,
    consult_with,
    expert_with,
    junk_consult,
    junk_hierarchical,
    junk_medec,
    junk_mimic,
    junk_profile,
    profile_with,
)
from .teachers_medec import medec_teacher
from .teachers_mimic import mimic_teacher
from .test_medec_source import pair_row, write_medec

PROFILE_REQUEST = {"messages": [{"role": "user", "content": "age (40) ... sex (male)"}]}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def gate_records(db: Path) -> list[dict]:
    """Every failed gate of every verdict event, with its stage."""
    with Warehouse(db) as warehouse:
        rows = warehouse.query(
            "SELECT stage, payload_json FROM events WHERE event_type = 'validation_verdict'"
        )
    return [
        {"stage": row["stage"], **gate}
        for row in rows
        for gate in json.loads(row["payload_json"]).get("gates", [])
    ]


def task_states(db: Path) -> dict[str, int]:
    with Warehouse(db) as warehouse:
        rows = warehouse.query("SELECT state, count(*) AS n FROM task_state GROUP BY state")
    return {row["state"]: row["n"] for row in rows}


def run_consult(responder: Callable, tmp_path: Path, n: int = 1) -> tuple[Path, list]:
    source = write_scenarios(tmp_path / "scenarios.json", n)
    db = tmp_path / "consult.db"
    with serve() as server:
        server.set_responder(responder)
        result = invoke(
            "run", "--recipe", "consult", "--source", str(source), "--base-url",
            server.openai_base_url, "--model", "fake", "--db", str(db),
            "--retry-base-delay", "0", "--no-progress",
        )  # fmt: skip
        requests = [r.json for r in server.chat_requests()]
    assert result.exit_code == 0, result.output
    return db, requests


def swapped_speaker() -> dict:
    turns = [dict(turn) for turn in DIALOGUE["turns"]]
    turns[3]["speaker"] = "doctor"  # the doctor speaks at 2 and 3
    return {"turns": turns}


GOOD_DD = EXPERT["differential_diagnosis"]
# gate → (stage, the stage's junk reply, the field the verdict must name)
CASES = {
    "blank": (
        "dialogue",
        {
            "turns": [
                *DIALOGUE["turns"][:3],
                {"speaker": "patient", "text": "}"},
                *DIALOGUE["turns"][4:],
            ]
        },
        "turns.3.text",
    ),
    "placeholder": ("profile", profile_with(chief_complaint="N/A"), "chief_complaint"),
    "degenerate": ("reasoning", LOOP, "output"),
    "empty_list": ("expert", expert_with(investigations=[]), "investigations"),
    "repeated_items": (
        "expert",
        expert_with(differential_diagnosis=[GOOD_DD[0], GOOD_DD[1], GOOD_DD[0]]),
        "differential_diagnosis.2.condition",
    ),
    "turn_count": ("dialogue", {"turns": DIALOGUE["turns"][:4]}, "turns"),
    "alternation": ("dialogue", swapped_speaker(), "turns.3.speaker"),
    "icd_mismatch": (
        "expert",
        expert_with(differential_diagnosis=[{**GOOD_DD[0], "icd10_code": "D10"}, *GOOD_DD[1:]]),
        "differential_diagnosis.0.icd10_code",
    ),
    "vitals": (
        "profile",
        profile_with(vital_signs__heart_rate="900/min"),
        "vital_signs.heart_rate",
    ),
}


def test_every_gate_has_an_end_to_end_case() -> None:
    assert set(CASES) == set(GATES)


@pytest.mark.parametrize("gate", sorted(CASES))
def test_junk_reply_is_rejected_with_the_gate_named(gate: str, tmp_path: Path) -> None:
    stage, reply, field = CASES[gate]
    db, requests = run_consult(consult_with(stage, reply), tmp_path)
    assert task_states(db) == {"rejected": 1}
    named = [g for g in gate_records(db) if g["gate"] == gate and g["field"] == field]
    assert named and all(g["stage"] == stage for g in named), gate_records(db)
    # Each of the stage's three attempts failed the gate, and the repairs quoted it.
    assert len(named) == 3
    repairs = [r for r in requests if len(r["messages"]) > 2]
    assert any(f"{field}: {gate}:" in r["messages"][-1]["content"] for r in repairs)
    with Warehouse(db) as warehouse:
        rejection = warehouse.query(
            "SELECT payload_json FROM events WHERE event_type = 'sample_rejected'"
        )
    assert f"{field}: {gate}:" in rejection[0]["payload_json"]


def test_the_good_teacher_passes_every_gate(tmp_path: Path) -> None:
    db, _ = run_consult(consult_teacher, tmp_path, n=3)
    assert task_states(db) == {"accepted": 3}
    assert gate_records(db) == []


# The embedded model's junk shapes from the issue, gate by gate.
def gates_of(failures: list) -> set[tuple[str, str]]:
    return {(f.gate, f.field) for f in failures}


def test_six_turns_of_brackets() -> None:
    found = gates_of(check_gates(Dialogue.model_validate(JUNK_DIALOGUE), DIALOGUE_GATES))
    assert {("blank", f"turns.{i}.text") for i in range(6)} <= found
    assert ("turn_count", "turns") in found
    assert ("alternation", "turns.1.speaker") in found


def test_four_turns_two_of_them_a_brace() -> None:
    found = gates_of(check_gates(Dialogue.model_validate(FOUR_TURNS), DIALOGUE_GATES))
    assert found == {("turn_count", "turns"), ("blank", "turns.1.text"), ("blank", "turns.3.text")}


def test_empty_string_lists_and_vitals() -> None:
    profile = PatientProfile.model_validate_json(junk_profile(PROFILE_REQUEST))
    found = gates_of(check_gates(profile, PROFILE_GATES))
    for field in ("symptoms", "past_medical_history", "medications", "allergies"):
        assert ("blank", f"{field}.0") in found
    for name in ("heart_rate", "blood_pressure", "temperature", "oxygen_saturation"):
        assert ("vitals", f"vital_signs.{name}") in found
    assert ("placeholder", "chief_complaint") in found


def test_four_identical_differentials_depression_d10() -> None:
    found = gates_of(check_gates(ExpertOutput.model_validate(JUNK_EXPERT), EXPERT_GATES))
    assert {("repeated_items", f"differential_diagnosis.{i}.condition") for i in (1, 2, 3)} <= found
    assert {("icd_mismatch", f"differential_diagnosis.{i}.icd10_code") for i in range(4)} <= found
    assert ("blank", "investigations.0") in found


def test_good_outputs_pass_and_a_loop_does_not() -> None:
    assert (
        check_gates(
            PatientProfile.model_validate_json(profile_reply(PROFILE_REQUEST)), PROFILE_GATES
        )
        == []
    )
    assert check_gates(Dialogue.model_validate(DIALOGUE), DIALOGUE_GATES) == []
    assert check_gates(ExpertOutput.model_validate(EXPERT), EXPERT_GATES) == []
    assert check_gates(REASONING, TEXT_GATES) == []
    assert gates_of(check_gates(LOOP, TEXT_GATES)) == {("degenerate", "output")}


# Every recipe: a junk teacher gets nothing accepted, its good teacher at least 80 %.
@pytest.fixture(scope="module")
def mimic_subject(tmp_path_factory) -> tuple[Path, int]:
    from medstore.sources.mimic.demo import make_demo
    from medstore.sources.mimic.duck import MimicDB

    demo = tmp_path_factory.mktemp("gates-mimic") / "demo"
    make_demo(demo, patients=4, seed=5)
    with MimicDB(demo, cache_dir=tmp_path_factory.mktemp("gates-mimic-cache")) as db:
        row = db.query(
            "SELECT subject_id FROM packet.patient_admissions WHERE has_discharge_note"
            " ORDER BY hadm_id LIMIT 1"
        )[0]
    return demo, row["subject_id"]


def recipe_args(recipe: str, tmp_path: Path, mimic_subject: tuple[Path, int]) -> list[str]:
    if recipe == "consult":
        return ["--source", str(write_scenarios(tmp_path / "scenarios.json", 4))]
    if recipe in ("medec-cot", "medec-safe"):
        rows = [pair_row(f"ms-g-{i}") for i in range(3)]
        extra = ["--add-reasoning"] if recipe == "medec-safe" else []
        return ["--source", str(write_medec(tmp_path / "medec.csv", rows)), *extra]
    if recipe == "hierarchical":
        return ["--limit", "4"]
    demo, subject = mimic_subject
    return ["--mimic-dir", str(demo), "--subject-id", str(subject)]


TEACHERS = {
    "consult": (junk_consult, consult_teacher),
    "medec-cot": (junk_medec, medec_teacher),
    "medec-safe": (junk_medec, medec_teacher),
    "hierarchical": (junk_hierarchical, hierarchical_teacher),
    "mimic-dialogue": (junk_mimic, mimic_teacher),
}


@pytest.mark.parametrize("recipe", sorted(TEACHERS))
def test_junk_teacher_gets_nothing_good_teacher_most(
    recipe: str, tmp_path: Path, mimic_subject, monkeypatch
) -> None:
    monkeypatch.setenv("MEDSTORE_MIMIC_CACHE", str(tmp_path / "mimic-cache"))
    junk, good = TEACHERS[recipe]
    for name, teacher in (("junk", junk), ("good", good)):
        db = tmp_path / f"{name}.db"
        with serve() as server:
            server.set_responder(teacher)
            result = invoke(
                "run", "--recipe", recipe, "--base-url", server.openai_base_url, "--model",
                "fake", "--db", str(db), "--retry-base-delay", "0", "--no-progress",
                *recipe_args(recipe, tmp_path, mimic_subject),
            )  # fmt: skip
        assert result.exit_code == 0, result.output
        states = task_states(db)
        total = sum(states.values())
        assert total >= 1, (recipe, states)
        if name == "junk":
            assert states.get("accepted", 0) == 0, (recipe, states)
            assert {g["gate"] for g in gate_records(db)}, recipe  # rejected by gates, named
        else:
            assert states.get("accepted", 0) / total >= 0.8, (recipe, states)


def test_run_status_and_report_name_the_gates(tmp_path: Path) -> None:
    """The run's last lines say how many passed and why not; status and report count by gate
    and name the worst tasks of each."""
    source = write_scenarios(tmp_path / "scenarios.json", 3)
    db = tmp_path / "mixed.db"

    def teacher(request: dict) -> str:  # case-01 gets a 4-turn dialogue, case-02 junk vitals
        text = first_user_message(request)
        if consult_stage(request) == "dialogue" and re.search(r'"age":\s*31\b', text):
            return json.dumps(FOUR_TURNS)
        if consult_stage(request) == "profile" and "age (32)" in text:
            return junk_profile(request)
        return consult_teacher(request)

    with serve() as server:
        server.set_responder(teacher)
        result = invoke(
            "run", "--recipe", "consult", "--source", str(source), "--base-url",
            server.openai_base_url, "--model", "fake", "--db", str(db),
            "--retry-base-delay", "0", "--no-progress",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "content gates: 1 of 3 tasks passed every check; 2 rejected by the gates" in lines
    top = next(line for line in lines if line.startswith("top gate failures: "))
    assert "dialogue turn_count (1 task)" in top and "profile blank (1 task)" in top

    status = invoke("status", "--db", str(db), "--json")
    gates = json.loads(status.output)["recipes"]["consult"]["rejected_by_gate"]
    assert gates["turn_count"] == 1 and gates["vitals"] == 1 and gates["placeholder"] == 1
    assert "content gates the rejected tasks failed" in invoke("status", "--db", str(db)).output

    report = json.loads(invoke("report", "--recipe", "consult", "--db", str(db), "--json").output)
    by_gate = {row["gate"]: row for row in report["gates"]}
    assert by_gate["turn_count"] == {
        "gate": "turn_count", "passed": "67%", "tasks_failed": 1, "rejected": 1, "repaired": 0,
    }  # fmt: skip
    worst = {(row["gate"], row["task"]) for row in report["gate_worst_examples"]}
    assert ("turn_count", "consult:case-01:v1") in worst
    assert ("vitals", "consult:case-02:v1") in worst
    assert "gate_worst_examples:" in invoke("report", "--recipe", "consult", "--db", str(db)).output
