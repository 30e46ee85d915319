"""Recipe `medec-cot`: chain-of-thought traces from MEDEC pairs, four examples per pair.

Replaces the "CoT Reasoning Trace Generation" script. For each (correct, error) pair:

- ``critic_correct``: a reviewer's assessment of the correct note, ending in CORRECT;
- ``critic_error``: a reviewer's detection on the error note, ending in ERROR with the erroneous
  sentence and its correction;
- ``generator_correct``: how the correct note was built;
- ``generator_error``: how the error was injected.

Each example is its own task (key ``medec-cot:<pair>_<variant>:v1``), so one failed trace never
costs the other three. The teacher is shown the doctor-verified answer and writes the reasoning
that reaches it; validators check that the critic's verdict matches it and that the critic names
the actual error sentence (fuzzy match), and failures go through the repair loop, then rejection.
Unflagged MEDEC rows (correct notes without a partner) are not used: every trace needs a pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError

from medstore.checks.gates import GateSpec, content_gates
from medstore.checks.parsing import ParseError, extract_json
from medstore.recipes.base import Recipe, Skip, Stage, Task
from medstore.sources.medec import MedecNote, MedecPair, default_medec_path, read_medec


def entities() -> Any:
    """medstore.checks.entities, imported on first use: its vocabulary's patterns take a while
    to compile, and a run of another recipe (which imports this module too) never needs them."""
    from medstore.checks import entities as module

    return module


VARIANTS = ("critic_correct", "critic_error", "generator_correct", "generator_error")
SENTENCE_MATCH = 85  # rapidfuzz score a named error sentence needs
MIN_REASONING_WORDS = 30
LEAK = re.compile(
    r"doctor-verified|ground truth|was (?:given|provided|told)|provided answer|the answer (?:given|"
    r"provided)|annotat",
    re.IGNORECASE,
)
TAGS = re.compile(r"</?(?:reasoning|think)>", re.IGNORECASE)
CRITIC_SYSTEM_PROMPT = (
    "You review clinical notes for medical errors in diagnosis, management, treatment, "
    "pharmacotherapy or the causal organism. Reason step by step inside <reasoning> tags, then "
    "give the verdict: CORRECT, or ERROR with the erroneous sentence and its correction."
)
GENERATOR_SYSTEM_PROMPT = (
    "You write clinical notes for training error-detection models. Reason step by step inside "
    "<reasoning> tags, then write the note: clinically correct, or with exactly one realistic "
    "error of the requested type."
)


class CriticOutput(BaseModel):
    reasoning: str = Field(min_length=20)
    verdict: Literal["CORRECT", "ERROR"]
    error_sentence: str | None = None
    correction: str | None = None


def reasoning_words(text: str) -> int:
    return len(text.split())


def critic_matches_truth(critic: CriticOutput, variables: dict[str, Any]) -> list[str]:
    """The verdict is the doctors'; on the error note, the named sentence and fix are theirs."""
    expected = variables["expected_verdict"]
    if critic.verdict != expected:
        return [f"verdict: the note is {expected}, not {critic.verdict}"]
    if expected == "CORRECT":
        if critic.error_sentence and critic.error_sentence.strip():
            return ["error_sentence: must be null when the verdict is CORRECT"]
        return []
    errors = []
    actual = variables["error_sentence"]
    named = critic.error_sentence or ""
    if not named.strip():
        errors.append("error_sentence: quote the erroneous sentence from the note")
    elif entities().sentence_similarity(named, actual) < SENTENCE_MATCH:
        errors.append(f"error_sentence: {named!r} is not the erroneous sentence; quote {actual!r}")
    fix_terms = entities().changed_terms(actual, variables["corrected_sentence"])
    if not critic.correction or not entities().mentions_any(critic.correction, fix_terms):
        errors.append(
            f"correction: give the corrected sentence ({variables['corrected_sentence']!r})"
        )
    return errors


def critic_reasoning_is_sound(critic: CriticOutput, variables: dict[str, Any]) -> list[str]:
    return reasoning_problems(critic.reasoning, "reasoning: ")


def reasoning_problems(text: str, prefix: str = "") -> list[str]:
    errors = []
    words = reasoning_words(TAGS.sub(" ", text))
    if words < MIN_REASONING_WORDS:
        errors.append(f"{prefix}the reasoning has {words} words; write at least 40")
    leak = LEAK.search(text)
    if leak:
        errors.append(
            f"{prefix}reason from the note alone; do not mention {leak.group(0)!r} or that the "
            "answer was given"
        )
    return errors


def generator_reasoning_is_sound(text: str, variables: dict[str, Any]) -> list[str]:
    return reasoning_problems(text)


def names_injected_error(text: str, variables: dict[str, Any]) -> list[str]:
    injected = entities().changed_terms(
        variables["corrected_sentence"], variables["error_sentence"]
    )
    if entities().mentions_any(text, injected):
        return []
    return [f"say what was injected: the reasoning must name {', '.join(injected[:4])}"]


# The content gates (medstore.checks.gates): a CORRECT verdict leaves the sentence fields blank.
CRITIC_GATES = GateSpec(optional_text=frozenset({"error_sentence", "correction"}))
TEXT_GATES = GateSpec()


def as_trace(text: str) -> str:
    return f"<reasoning>\n{TAGS.sub('', text).strip()}\n</reasoning>"


class MedecCotRecipe(Recipe):
    name = "medec-cot"
    version = "1"
    description = "Chain-of-thought traces from MEDEC pairs: critic/generator × correct/error"
    licences = (
        "MEDEC-MS: CC BY 4.0 — Ben Abacha A., Yim W., Fu Y., Sun Z., Yetisgen M., Xia F., "
        "Lin T. MEDEC: A Benchmark for Medical Error Detection and Correction in Clinical "
        "Notes. Findings of ACL 2025.",
    )
    stages = (
        Stage(
            "critic",
            "medec-cot/critic",
            0.30,
            CriticOutput,
            1200,
            validators=(
                critic_matches_truth,
                critic_reasoning_is_sound,
                content_gates(CRITIC_GATES),
            ),
        ),
        Stage(
            "generator_correct",
            "medec-cot/generator_correct",
            0.50,
            None,
            900,
            validators=(generator_reasoning_is_sound, content_gates(TEXT_GATES)),
        ),
        Stage(
            "generator_error",
            "medec-cot/generator_error",
            0.50,
            None,
            900,
            validators=(
                generator_reasoning_is_sound,
                names_injected_error,
                content_gates(TEXT_GATES),
            ),
        ),
    )

    def default_source(self) -> str:
        return str(default_medec_path())

    def read_source(self, source: str | None) -> Iterator[Task | Skip]:
        for item in read_medec(source):
            if isinstance(item, MedecPair):
                for variant in VARIANTS:
                    note_id = f"{item.note_id}_{variant}"
                    yield Task(self.task_key(note_id), item.note_id, pair_record(item, variant))
            elif isinstance(item, MedecNote):
                yield Skip(item.note_id, "unflagged note (medec-cot uses pairs)")
            else:
                yield item

    async def run(self, task: Task, ctx: Any) -> dict[str, Any]:
        record = task.record
        variant = record["variant"]
        if variant.startswith("critic"):
            return await self.critic_sample(record, ctx)
        return await self.generator_sample(record, ctx)

    async def critic_sample(self, record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        on_error = record["variant"] == "critic_error"
        note = record["incorrect_note"] if on_error else record["correct_note"]
        if on_error:
            truth = {
                "verdict": "ERROR",
                "error_sentence": record["error_sentence"],
                "correction": record["corrected_sentence"],
            }
        else:
            truth = {"verdict": "CORRECT", "error_sentence": None, "correction": None}
        critic = await ctx.generate(
            self.stage("critic"),
            {
                "note": note,
                "ground_truth": truth,
                "expected_verdict": truth["verdict"],
                "error_sentence": record["error_sentence"],
                "corrected_sentence": record["corrected_sentence"],
            },
        )
        details = None
        if on_error:
            details = {
                **error_details(record),
                "identified_sentence": critic.error_sentence,
                "proposed_correction": critic.correction,
                "match_score": round(
                    entities().sentence_similarity(
                        critic.error_sentence or "", record["error_sentence"]
                    ),
                    1,
                ),
            }
        return self.sample(record, "critic", note, critic.reasoning, truth["verdict"], details)

    async def generator_sample(self, record: dict[str, Any], ctx: Any) -> dict[str, Any]:
        on_error = record["variant"] == "generator_error"
        stage = self.stage(record["variant"])
        text = await ctx.generate(
            stage,
            {
                "note": record["correct_note"],
                "correct_note": record["correct_note"],
                "error_type": record["error_type"],
                "error_sentence": record["error_sentence"],
                "corrected_sentence": record["corrected_sentence"],
            },
        )
        if on_error:
            sample = self.sample(
                record, "generator", record["incorrect_note"], text, "ERROR", error_details(record)
            )
        else:
            sample = self.sample(record, "generator", record["correct_note"], text, "CORRECT", None)
        sample["source_note"] = record["correct_note"]
        return sample

    def sample(
        self,
        record: dict[str, Any],
        role: str,
        note: str,
        reasoning: str,
        label: str,
        details: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "note_id": record["note_id"],
            "pair_id": record["pair_id"],
            "role": role,
            "task": "assessment" if role == "critic" else "generation",
            "note": note,
            "reasoning": as_trace(reasoning),
            "label": label,
            "error_type": record["error_type"] if label == "ERROR" else None,
            "error_details": details,
            "source_note": None,
        }

    def label(self, sample: dict[str, Any]) -> str | None:
        return sample["label"]

    group_by = "MEDEC note (Text ID)"
    export_features: ClassVar[dict[str, Any]] = {
        "note_id": "string",
        "pair_id": "string",
        "role": "string",
        "task": "string",
        "note": "string",
        "reasoning": "string",
        "label": "string",
        "error_type": "string",
        "error_details": {
            "error_sentence_id": "int64",
            "error_sentence": "string",
            "corrected_sentence": "string",
            "identified_sentence": "string",
            "proposed_correction": "string",
            "match_score": "float64",
        },
        "source_note": "string",
    }
    # A critic output with the wrong verdict, rejected by critic_matches_truth, is the rejected
    # answer of a pair whose chosen answer is the task's verified trace.
    preference_stages = ("critic",)

    def rejected_sample(
        self, sample: dict[str, Any], stage: str, raw_output: str, errors: list[str]
    ) -> dict[str, Any] | None:
        """The critic sample as a wrong-verdict output would have written it: the teacher's own
        reasoning, verdict, sentence and correction. Other failures (a wrong sentence, a short
        trace, unparseable JSON) make no pair."""
        if stage != "critic" or sample["role"] != "critic":
            return None
        if not any(error.startswith("verdict:") for error in errors):
            return None
        try:
            critic = CriticOutput.model_validate(extract_json(raw_output))
        except (ParseError, ValidationError):
            return None
        if critic.verdict == sample["label"]:
            return None
        details = None
        if critic.verdict == "ERROR":
            details = {
                "error_sentence": critic.error_sentence or "",
                "corrected_sentence": critic.correction or "",
            }
        return {
            **sample,
            "reasoning": as_trace(critic.reasoning),
            "label": critic.verdict,
            "error_details": details,
        }

    def group_key(self, task_key: str, sample: dict[str, Any]) -> str:
        return f"medec:{sample['pair_id']}"  # all four variants of a note, in one split

    def to_messages(self, sample: dict[str, Any]) -> list[dict[str, str]]:
        """Critic: note in, trace and verdict out. Generator: source note in, trace and note out.

        The trace stays in <reasoning> tags (the exporter turns them into the student's own
        thinking tags); verdicts quote MEDEC's doctor-verified sentences, not the teacher's.
        """
        details = sample["error_details"] or {}
        if sample["role"] == "critic":
            system = CRITIC_SYSTEM_PROMPT
            user = f"Review this clinical note for a medical error.\n\n{sample['note']}"
            verdict = "Verdict: CORRECT"
            if sample["label"] == "ERROR":
                verdict = (
                    f"Verdict: ERROR\nError sentence: {details['error_sentence']}\n"
                    f"Correction: {details['corrected_sentence']}"
                )
            answer = f"{sample['reasoning']}\n\n{verdict}"
        else:
            system = GENERATOR_SYSTEM_PROMPT
            if sample["label"] == "ERROR":
                mode = f"Inject exactly one realistic {sample['error_type']} error into it."
            else:
                mode = "Keep it clinically correct."
            user = f"Source note:\n{sample['source_note']}\n\nWrite a clinical note from it. {mode}"
            answer = f"{sample['reasoning']}\n\n{sample['note']}"
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]

    def report(self, warehouse: Any) -> dict[str, Any]:
        from medstore.recipes.medec_report import medec_cot_report

        return medec_cot_report(warehouse, self.name)


def pair_record(pair: MedecPair, variant: str) -> dict[str, Any]:
    return {
        "note_id": f"{pair.note_id}_{variant}",
        "pair_id": pair.note_id,
        "variant": variant,
        "split": pair.split,
        "correct_note": pair.correct_note,
        "incorrect_note": pair.incorrect_note,
        "error_type": pair.error_type,
        "error_sentence_id": pair.error_sentence_id,
        "error_sentence": pair.error_sentence,
        "corrected_sentence": pair.corrected_sentence,
    }


def error_details(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "error_sentence_id": record["error_sentence_id"],
        "error_sentence": record["error_sentence"],
        "corrected_sentence": record["corrected_sentence"],
    }
