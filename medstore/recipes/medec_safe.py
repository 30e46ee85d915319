"""Recipe `medec-safe`: safe SFT data from MEDEC, 50% CORRECT paraphrases, 50% INCORRECT as-is.

Replaces the "Safe SFT Data Generation" script. Each MEDEC pair gives two tasks:

- CORRECT: the teacher paraphrases the doctor-verified correct note; the paraphrase is accepted
  only if its values, medications and diagnoses survive (medstore.checks.entities) and it really
  differs from the original (edit distance ratio).
- INCORRECT: MEDEC's note with the error, byte for byte. No model ever writes it: the task makes
  no LLM call at all, or with --add-reasoning only the call that explains the error (its output
  goes to ``reasoning``, never to ``note``).

No new errors are ever generated. The view ``medec_safe_balanced`` (what export takes) keeps the
labels exactly 50/50; ``report`` shows what balancing left out.

Unflagged MEDEC rows are correct notes without a partner. By default they are not used (the
dataset stays pair-wise, so every CORRECT has its INCORRECT twin); with --use-unflagged they are
paraphrased too and the balanced view uses them only to stand in for pairs whose own paraphrase
was rejected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field

from medstore.checks.gates import GateSpec, content_gates
from medstore.recipes.base import Recipe, RecipeOptions, Skip, Stage, Task
from medstore.recipes.features import model_spec
from medstore.sources.medec import (
    MedecNote,
    MedecPair,
    default_medec_path,
    read_medec,
    resolve_medec_path,
)


def entities() -> Any:
    """medstore.checks.entities, imported on first use: its vocabulary's patterns take a while
    to compile, and a run of another recipe (which imports this module too) never needs them."""
    from medstore.checks import entities as module

    return module


CORRECT, INCORRECT = "CORRECT", "INCORRECT"
PARAPHRASED = "medec_correct_paraphrased"
UNFLAGGED_PARAPHRASED = "medec_unflagged_paraphrased"
VERIFIED_ERROR = "medec_incorrect_verified"
PREAMBLE = re.compile(
    r"^\s*(here is|here's|sure|certainly|paraphrased note|paraphrase\b|```)", re.IGNORECASE
)
TRIM = " \t\r\n"  # what is stripped from a paraphrase (the same set the sources view trims)
CHAT_SYSTEM_PROMPT = (
    "You review clinical notes for medical errors in diagnosis, management, treatment, "
    "pharmacotherapy or the causal organism. Answer CORRECT if the note has no error; otherwise "
    "answer INCORRECT, quote the erroneous sentence and give its correction."
)


class ErrorReasoning(BaseModel):
    """Why a MEDEC error is wrong (the optional --add-reasoning output)."""

    error_identified: str = Field(min_length=5)
    why_wrong: str = Field(min_length=20)
    key_clues: list[Annotated[str, Field(min_length=3)]] = Field(min_length=3)
    correct_answer: str = Field(min_length=3)
    clinical_impact: str = Field(min_length=10)


def paraphrase_is_faithful(text: str, variables: dict[str, Any]) -> list[str]:
    """Every value, medication and diagnosis kept; really reworded; no preamble."""
    paraphrase = text.strip(TRIM)
    check = entities().check_preservation(variables["note"], paraphrase)
    errors = check.errors(variables["min_entity_preservation"])
    if check.edit_ratio < variables["min_edit_ratio"]:
        errors.append(
            f"the paraphrase is too close to the original (edit distance ratio "
            f"{check.edit_ratio:.2f}, at least {variables['min_edit_ratio']:.2f} needed): "
            "reword and restructure the sentences"
        )
    if PREAMBLE.match(paraphrase):
        errors.append("start directly with the note: no title, preamble or code fence")
    return errors


def reasoning_names_correction(reasoning: ErrorReasoning, variables: dict[str, Any]) -> list[str]:
    terms = entities().changed_terms(variables["error_sentence"], variables["corrected_sentence"])
    if entities().mentions_any(f"{reasoning.correct_answer} {reasoning.why_wrong}", terms):
        return []
    return [
        "correct_answer: name the doctor's correction "
        f"({variables['corrected_sentence']!r}) and explain why it fits"
    ]


def must_keep(note: str) -> str:
    """The entities a paraphrase must keep, as a list for the prompt."""
    lines = []
    for entity in entities().extract_entities(note):
        if entity.kind == "value":
            lines.append(f"- {entity.text}")
        elif entity.kind == "medication":
            details = [
                f"{name} {value}"
                for name, value in (
                    ("dose", entity.dose),
                    ("route", entity.route),
                    ("frequency", entity.frequency),
                )
                if value
            ]
            lines.append(f"- {entity.key}" + (f" ({', '.join(details)})" if details else ""))
        else:
            lines.append(f"- {entity.text} (a synonym is fine)")
    return "\n".join(lines) or "- (no values, medications or diagnoses found)"


class MedecSafeOptions(RecipeOptions):
    add_reasoning: bool = Field(
        False,
        description="Explain each INCORRECT note's error (JSON: error_identified, why_wrong, "
        "key_clues, correct_answer, clinical_impact).",
    )
    min_entity_preservation: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Share of the original's values, medications and diagnoses a paraphrase "
        "must keep (values and medications must all survive regardless).",
    )
    min_edit_ratio: float = Field(
        0.15,
        ge=0,
        le=1,
        description="How much a paraphrase must differ (normalised edit distance).",
    )
    use_unflagged: bool = Field(
        False,
        description="Paraphrase unflagged notes too, as stand-ins for pairs whose paraphrase is "
        "rejected.",
    )


class MedecSafeRecipe(Recipe):
    name = "medec-safe"
    version = "1"
    description = "MEDEC notes for safe SFT: CORRECT paraphrases + INCORRECT as-is, 50/50"
    dataset_view = "medec_safe_balanced"
    licences = (
        "MEDEC-MS: CC BY 4.0 — Ben Abacha A., Yim W., Fu Y., Sun Z., Yetisgen M., Xia F., "
        "Lin T. MEDEC: A Benchmark for Medical Error Detection and Correction in Clinical "
        "Notes. Findings of ACL 2025.",
    )
    stages = (
        Stage(
            "paraphrase",
            "medec-safe/paraphrase",
            0.70,
            None,
            1500,
            validators=(paraphrase_is_faithful, content_gates(GateSpec())),
        ),
        Stage(
            "reasoning",
            "medec-safe/reasoning",
            0.30,
            ErrorReasoning,
            700,
            validators=(
                reasoning_names_correction,
                content_gates(GateSpec(required_lists=frozenset({"key_clues"}))),
            ),
        ),
    )
    Options = MedecSafeOptions
    options: MedecSafeOptions

    def default_source(self) -> str:
        return str(default_medec_path())

    def read_source(self, source: str | None) -> Iterator[Task | Skip]:
        path = resolve_medec_path(source)
        for item in read_medec(path):
            if isinstance(item, MedecPair):
                yield self.correct_task(item.note_id, item.correct_note, item.split, PARAPHRASED)
                yield self.incorrect_task(item, str(path))
            elif isinstance(item, MedecNote):
                if self.options.use_unflagged:
                    yield self.correct_task(
                        item.note_id, item.note, item.split, UNFLAGGED_PARAPHRASED
                    )
                else:
                    yield Skip(item.note_id, "unflagged note (medec-safe uses pairs)")
            else:
                yield item

    def correct_task(self, original_id: str, note: str, split: str, source: str) -> Task:
        note_id = f"{original_id}_correct"
        record = {
            "note_id": note_id,
            "original_note_id": original_id,
            "label": CORRECT,
            "source": source,
            "split": split,
            "note": note,
        }
        return Task(self.task_key(note_id), original_id, record)

    def incorrect_task(self, pair: MedecPair, source_file: str) -> Task:
        """The record keeps the CSV's path, so `report` can compare the note with the file."""
        note_id = f"{pair.note_id}_incorrect"
        record = {
            "note_id": note_id,
            "original_note_id": pair.note_id,
            "label": INCORRECT,
            "source": VERIFIED_ERROR,
            "split": pair.split,
            "note": pair.incorrect_note,
            "error_type": pair.error_type,
            "error_sentence_id": pair.error_sentence_id,
            "error_sentence": pair.error_sentence,
            "corrected_sentence": pair.corrected_sentence,
            "source_file": source_file,
            "source_line": pair.line,
        }
        return Task(self.task_key(note_id), pair.note_id, record)

    async def run(self, task: Task, ctx: Any) -> dict[str, Any]:
        if task.record["label"] == INCORRECT:
            return await self.incorrect_sample(task.record, ctx)
        return await self.correct_sample(task.record, ctx)

    async def correct_sample(self, record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        original = record["note"]
        text = await ctx.generate(
            self.stage("paraphrase"),
            {
                "note": original,
                "must_keep": must_keep(original),
                "min_entity_preservation": self.options.min_entity_preservation,
                "min_edit_ratio": self.options.min_edit_ratio,
            },
        )
        paraphrase = text.strip(TRIM)
        check = entities().check_preservation(original, paraphrase)
        return {
            "note_id": record["note_id"],
            "note": paraphrase,
            "label": CORRECT,
            "original_note_id": record["original_note_id"],
            "source": record["source"],
            "error_type": None,
            "error_location": None,
            "correction": None,
            "metadata": {
                "generation_type": "correct_paraphrase",
                "split": record["split"],
                "entity_preservation": check.metrics(),
            },
            "reasoning": None,
        }

    async def incorrect_sample(self, record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """MEDEC's note with the error, untouched. The only model output used is the reasoning."""
        reasoning = None
        if self.options.add_reasoning:
            explained = await ctx.generate(
                self.stage("reasoning"),
                {
                    "note": record["note"],
                    "error_type": record["error_type"],
                    "error_sentence": record["error_sentence"],
                    "corrected_sentence": record["corrected_sentence"],
                },
            )
            reasoning = explained.model_dump()
        sample = {
            "note_id": record["note_id"],
            "note": record["note"],
            "label": INCORRECT,
            "original_note_id": record["original_note_id"],
            "source": VERIFIED_ERROR,
            "error_type": record["error_type"],
            "error_location": record["error_sentence"],
            "correction": record["corrected_sentence"],
            "metadata": {
                "generation_type": "medec_verified_error",
                "split": record["split"],
                "error_sentence_id": record["error_sentence_id"],
            },
            "reasoning": reasoning,
        }
        if sample["note"].encode("utf-8") != record["note"].encode("utf-8"):
            raise AssertionError(f"{record['note_id']}: the INCORRECT note differs from MEDEC's")
        return sample

    def label(self, sample: dict[str, Any]) -> str | None:
        return sample["label"]

    group_by = "MEDEC note (Text ID)"
    balanced_labels = (CORRECT, INCORRECT)
    export_features: ClassVar[dict[str, Any]] = {
        "note_id": "string",
        "note": "string",
        "label": "string",
        "original_note_id": "string",
        "source": "string",
        "error_type": "string",
        "error_location": "string",
        "correction": "string",
        "metadata": {
            "generation_type": "string",
            "split": "string",
            "error_sentence_id": "int64",
            "entity_preservation": "json",  # by_kind's keys vary with the note
        },
        "reasoning": model_spec(ErrorReasoning),
    }

    def group_key(self, task_key: str, sample: dict[str, Any]) -> str:
        return f"medec:{sample['original_note_id']}"  # a note's paraphrase and as-is note together

    def to_messages(self, sample: dict[str, Any]) -> list[dict[str, str]]:
        """The note in; the verdict out (INCORRECT with the error, its fix and any reasoning)."""
        if sample["label"] == CORRECT:
            answer = CORRECT
        else:
            answer = (
                f"{INCORRECT}\nError sentence: {sample['error_location']}\n"
                f"Correction: {sample['correction']}"
            )
            if sample.get("reasoning"):
                answer = (
                    f"<reasoning>\n{reasoning_text(sample['reasoning'])}\n</reasoning>\n\n{answer}"
                )
        return [
            {"role": "system", "content": CHAT_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": f"{sample['note']}\n\nIs this clinical note CORRECT or INCORRECT?",
            },
            {"role": "assistant", "content": answer},
        ]

    def report(self, warehouse: Any) -> dict[str, Any]:
        from medstore.recipes.medec_report import medec_safe_report

        return medec_safe_report(warehouse, self.name)


def reasoning_text(reasoning: dict[str, Any]) -> str:
    clues = "\n".join(f"- {clue}" for clue in reasoning["key_clues"])
    return (
        f"{reasoning['error_identified']}\n{reasoning['why_wrong']}\nKey clues:\n{clues}\n"
        f"Correct answer: {reasoning['correct_answer']}\n"
        f"Clinical impact: {reasoning['clinical_impact']}"
    )
