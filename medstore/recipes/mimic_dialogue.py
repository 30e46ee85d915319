"""Recipe `mimic-dialogue`: MIMIC-IV admission packet → chronological inpatient conversation.

Replaces the MIMIC-IV benchmark script. One task per admission of the chosen patient: the
deterministic packet (its hash in the task record and key) is rendered into the prompt, and the
teacher's conversation is checked for chronology, speakers, non-empty turns and the facts it
cites. MIMIC is credentialed data: the data-use guard keeps packets on this machine unless the
user names a remote host.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from medstore.checks.gates import GateSpec, TurnRule, content_gates
from medstore.recipes.base import CredentialedOptions, Recipe, Skip, SourceError, Stage, Task
from medstore.recipes.features import model_spec
from medstore.sources.mimic import MIMIC_DIR_ENV

PHASES = ("admission", "hospital_course", "discharge")

CHAT_SYSTEM_PROMPT = (
    "You are a hospital doctor. Given an admission's record, write the chronological "
    "conversation of the stay with the patient, using only facts from the record."
)


class Turn(BaseModel):
    speaker: Literal["doctor", "patient", "nurse", "family"]
    day: int = Field(ge=1)
    phase: Literal["admission", "hospital_course", "discharge"]
    text: str = Field(min_length=1)
    cites: list[str] = []

    @field_validator("text")
    @classmethod
    def not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("the turn's text is blank")
        return text.strip()


class Conversation(BaseModel):
    # The prompt asks for 8 to 30 turns: the `turn_count` gate checks them.
    turns: list[Turn] = Field(min_length=6)


# The content gates (medstore.checks.gates): 8 to 30 turns, as the prompt asks; any speaker order.
CONVERSATION_GATES = GateSpec(turns=TurnRule("turns", min_turns=8, max_turns=30))


def chronology(conversation: Conversation, variables: dict[str, Any]) -> list[str]:
    """Days never go back and stay within the stay; phases go admission → course → discharge."""
    errors = []
    last_day = variables["facts"]["hospital_days"]
    if conversation.turns[0].phase != "admission":
        errors.append("turns.0.phase: the conversation must start in the admission phase")
    for index, (before, turn) in enumerate(
        zip(conversation.turns, conversation.turns[1:], strict=False), 1
    ):
        if turn.day < before.day:
            errors.append(f"turns.{index}.day: day {turn.day} comes after day {before.day}")
        if PHASES.index(turn.phase) < PHASES.index(before.phase):
            errors.append(f"turns.{index}.phase: {turn.phase} comes after {before.phase}")
    for index, turn in enumerate(conversation.turns):
        if last_day and turn.day > last_day:
            errors.append(f"turns.{index}.day: day {turn.day} is after the last day ({last_day})")
    return errors


def speakers(conversation: Conversation, variables: dict[str, Any]) -> list[str]:
    present = {turn.speaker for turn in conversation.turns}
    return [f"turns: no turn by the {who}" for who in ("doctor", "patient") if who not in present]


def cited_facts_exist(conversation: Conversation, variables: dict[str, Any]) -> list[str]:
    """Every cited name is in the packet; a lab value stated with its test is one it shows."""
    facts = variables["facts"]
    names = [name.lower() for name in facts["names"]]
    errors = []
    for index, turn in enumerate(conversation.turns):
        for cite in turn.cites:
            wanted = cite.strip().lower()
            if wanted and not any(name in wanted or wanted in name for name in names):
                errors.append(f"turns.{index}.cites: {cite!r} is not in the record")
        errors += [
            f"turns.{index}.text: {label} {value} is not a value the record shows for {label}"
            for label, value in stated_lab_values(turn.text, facts)
        ]
    return errors


def stated_lab_values(text: str, facts: dict[str, Any]) -> list[tuple[str, str]]:
    """(test, value) pairs stated in ``text`` that neither the labs nor the notes contain."""
    wrong = []
    known_in_notes = set(facts["note_numbers"])
    for label, values in facts["lab_values"].items():
        pattern = re.escape(label) + r"(?:\s+(?:was|is|of|at|level))?[\s:=]+(-?\d+(?:\.\d+)?)"
        for match in re.finditer(pattern, text, flags=re.IGNORECASE):
            number = float(match.group(1))
            if not any(abs(number - v) < 1e-6 for v in [*values, *known_in_notes]):
                wrong.append((label, match.group(1)))
    return wrong


class MimicDialogueOptions(CredentialedOptions):
    mimic_dir: str | None = Field(
        None, description=f"MIMIC-IV root holding hosp/ and icu/ [${MIMIC_DIR_ENV}]."
    )
    note_dir: str | None = Field(
        None, description="MIMIC-IV-Note root holding note/ [default: --mimic-dir]."
    )
    subject_id: int | None = Field(None, description="The patient.")
    hadm_id: int | None = Field(None, description="Only this admission.")
    max_admissions: int | None = Field(
        None, ge=1, description="The first N admissions (by admittime, then hadm_id)."
    )
    include_admissions_without_discharge: bool = Field(
        False, description="Also admissions that have no discharge note."
    )
    retry_limit: int = Field(2, ge=0, description="Repair attempts per conversation.")
    max_output_tokens: int = Field(
        3000, ge=64, description="Output token cap of the conversation call."
    )
    row_cap_labs: int = Field(120, ge=0, description="Lab rows kept per packet.")
    row_cap_radiology: int = Field(8, ge=0, description="Radiology reports kept per packet.")
    row_cap_emar: int = Field(120, ge=0, description="eMAR rows kept per packet.")


class MimicDialogueRecipe(Recipe):
    name = "mimic-dialogue"
    version = "1"
    description = "Chronological inpatient conversations grounded in MIMIC-IV admission packets"
    credentialed_source = True
    licences = (
        "MIMIC-IV and MIMIC-IV-Note (PhysioNet Credentialed Health Data License 1.5.0): "
        "credentialed data. Samples derived from it may be shared only with credentialed users "
        "who have signed the PhysioNet data use agreement; never send it to services that may "
        "retain it. Johnson A. et al., MIMIC-IV, PhysioNet.",
    )
    stages = (
        Stage(
            "conversation",
            "mimic-dialogue/conversation",
            0.4,
            Conversation,
            3000,
            validators=(chronology, speakers, cited_facts_exist, content_gates(CONVERSATION_GATES)),
            max_repairs=2,
        ),
    )
    Options = MimicDialogueOptions
    options: MimicDialogueOptions

    def default_source(self) -> str | None:
        return self.options.mimic_dir or os.environ.get(MIMIC_DIR_ENV)

    def read_source(self, source: str | None) -> Iterator[Task | Skip]:
        from medstore.sources.mimic.packet import packet_hash

        mimic_dir = self.options.mimic_dir or source or self.default_source()
        subject_id = self.options.subject_id
        if not mimic_dir:
            raise SourceError(f"mimic-dialogue needs --mimic-dir DIR (or ${MIMIC_DIR_ENV})")
        if subject_id is None:
            raise SourceError(
                "mimic-dialogue needs --subject-id S (pick one with `python cli.py mimic "
                "build-cohort`)"
            )
        admissions, packets, sources = self.read_admissions(mimic_dir, subject_id)
        keep_undocumented = self.options.include_admissions_without_discharge
        for admission in admissions:
            source_id = f"{subject_id}-{admission['hadm_id']}"
            if not admission["has_discharge_note"] and not keep_undocumented:
                yield Skip(
                    source_id,
                    "no_discharge_note",
                    "the prompt needs a discharge note "
                    "(--include-admissions-without-discharge takes it anyway)",
                )
                continue
            packet = packets[admission["hadm_id"]]
            digest = packet_hash(packet)
            yield Task(
                self.task_key(source_id, digest.split(":", 1)[1][:12]),
                source_id,
                {
                    "subject_id": subject_id,
                    "hadm_id": admission["hadm_id"],
                    "admission_seq": admission["admission_seq"],
                    "packet_hash": digest,
                    "packet": packet,
                    "source_files": sources,
                },
            )

    def read_admissions(
        self, mimic_dir: str, subject_id: int
    ) -> tuple[list[dict[str, Any]], dict[int, Any], dict[str, Any]]:
        """The subject's admissions (filtered by --hadm-id, --max-admissions), their packets and
        a description of the source files; any data problem is one SourceError."""
        from medstore.sources.mimic.duck import MimicDataError, MimicDB
        from medstore.sources.mimic.packet import RowCaps, build_packets, subject_admissions

        options = self.options
        caps = RowCaps(
            labs=options.row_cap_labs,
            radiology=options.row_cap_radiology,
            emar=options.row_cap_emar,
        )
        try:
            with MimicDB(mimic_dir, options.note_dir) as db:
                admissions = subject_admissions(db, subject_id)
                if options.hadm_id is not None:
                    admissions = [a for a in admissions if a["hadm_id"] == options.hadm_id]
                    if not admissions:
                        raise MimicDataError(
                            f"hadm_id {options.hadm_id}: not an admission of subject_id "
                            f"{subject_id}"
                        )
                if options.max_admissions:
                    admissions = admissions[: options.max_admissions]
                packets = build_packets(db, [a["hadm_id"] for a in admissions], caps)
                return admissions, packets, db.describe()
        except MimicDataError as exc:
            raise SourceError(str(exc)) from exc

    async def run(self, task: Task, ctx: Any) -> dict[str, Any]:
        from medstore.sources.mimic.render import packet_facts, render_packet

        record = task.record
        packet = record["packet"]
        stage = self.stage("conversation")
        if self.options.retry_limit != stage.max_repairs:
            stage = replace(stage, max_repairs=self.options.retry_limit)
        facts = packet_facts(packet)
        conversation = await ctx.generate(
            stage,
            {
                "packet_text": render_packet(packet),
                "hospital_days": str(facts["hospital_days"]),
                "facts": facts,
            },
            max_tokens=self.options.max_output_tokens,
        )
        return {
            "subject_id": record["subject_id"],
            "hadm_id": record["hadm_id"],
            "admission_seq": record["admission_seq"],
            "packet_hash": record["packet_hash"],
            "hospital_days": facts["hospital_days"],
            "turns": [turn.model_dump() for turn in conversation.turns],
        }

    def label(self, sample: dict[str, Any]) -> str | None:
        return f"admission-{sample['admission_seq']}"

    group_by = "MIMIC subject_id"
    export_features: ClassVar[dict[str, Any]] = {
        "subject_id": "int64",
        "hadm_id": "int64",
        "admission_seq": "int64",
        "packet_hash": "string",
        "hospital_days": "int64",
        "turns": [model_spec(Turn)],
    }

    def group_key(self, task_key: str, sample: dict[str, Any]) -> str:
        return f"mimic:{sample['subject_id']}"  # every admission of a patient, in one split

    def to_messages(self, sample: dict[str, Any]) -> list[dict[str, str]]:
        transcript = "\n".join(
            f"[day {t['day']}, {t['phase']}] {t['speaker'].title()}: {t['text']}"
            for t in sample["turns"]
        )
        return [
            {"role": "system", "content": CHAT_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": f"Admission {sample['hadm_id']} of patient {sample['subject_id']} "
                f"({sample['hospital_days']} hospital days). Packet hash: "
                f"{sample['packet_hash']}.",
            },
            {"role": "assistant", "content": transcript},
        ]

    def report(self, warehouse: Any) -> dict[str, Any]:
        from medstore.recipes.base import generic_report

        figures = generic_report(warehouse, self.name)
        decisions = warehouse.select("report_data_use_decisions", recipe=self.name)
        figures["data_use_decisions"] = {row["rule"]: row["n"] for row in decisions}
        rows = warehouse.select("report_samples", recipe=self.name)
        turns = [len(json.loads(row["sample_json"])["turns"]) for row in rows]
        figures["turns_per_conversation"] = (
            {"min": min(turns), "max": max(turns), "mean": round(sum(turns) / len(turns), 1)}
            if turns
            else {}
        )
        return figures
