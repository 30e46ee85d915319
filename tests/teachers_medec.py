"""Scripted teachers for the MEDEC recipes: fake-server responders that answer each stage well.

They read the stage and its inputs from the prompt, so tests script only the deviations they
care about (a paraphrase that drops a dose, a critic that names the wrong sentence).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .teachers import first_user_message

REASONING_WORDS = (
    "The patient's presentation, vital signs and examination findings were read in order. The "
    "history and the laboratory results were compared with each diagnostic and management "
    "statement, and every statement was checked for consistency with the findings, the "
    "epidemiology and the expected course of the most likely condition."
)


def medec_stage(request: dict[str, Any]) -> str:
    text = first_user_message(request)
    if text.startswith("Paraphrase this clinical note."):
        return "paraphrase"
    if text.startswith("Clinical note with an error ("):
        return "reasoning"
    if text.startswith("Review the clinical note below for a medical error."):
        return "critic"
    if text.startswith("Explain how this clinically correct note was built."):
        return "generator_correct"
    if text.startswith("Explain how the error was injected into this clinical note."):
        return "generator_error"
    raise ValueError(f"not a MEDEC prompt: {text[:80]!r}")


def quoted_note(text: str) -> str:
    return re.search(r'"""\n(.*?)\n"""', text, re.DOTALL).group(1)


def paraphrase(note: str) -> str:
    """Every sentence kept word for word, in reverse order, after a lead-in: all entities survive
    and the edit distance is large."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+(?=[A-Z])", note.strip()) if p.strip()]
    return "In summary, the record states the following. " + " ".join(reversed(parts))


def critic_reply(request: dict[str, Any], *, error_sentence: str | None = None) -> str:
    text = first_user_message(request)
    truth = json.loads(
        re.search(r"given to you\):\n(\{.*?\n\})\n\nReturn", text, re.DOTALL).group(1)
    )
    named = truth["error_sentence"] if error_sentence is None else error_sentence
    return json.dumps(
        {
            "reasoning": REASONING_WORDS,
            "verdict": truth["verdict"],
            "error_sentence": named,
            "correction": truth["correction"],
        }
    )


def generator_error_reply(request: dict[str, Any]) -> str:
    text = first_user_message(request)
    injected = re.search(r'was replaced by "(.*)"\.\n', text, re.DOTALL).group(1)
    return f"{REASONING_WORDS} The targeted sentence was changed to read: {injected}"


def reasoning_reply(request: dict[str, Any], *, clues: int = 3) -> str:
    text = first_user_message(request)
    correction = re.search(r'The doctor\'s correction: "(.*)"\n\nReturn', text, re.DOTALL).group(1)
    return json.dumps(
        {
            "error_identified": "The sentence states the wrong clinical conclusion.",
            "why_wrong": "The findings in the note point to another answer than the one given.",
            "key_clues": [f"clue number {i + 1} from the history" for i in range(clues)],
            "correct_answer": correction,
            "clinical_impact": "The wrong conclusion would lead to the wrong treatment.",
        }
    )


def medec_teacher(request: dict[str, Any]) -> str:
    """A responder that answers every medec-safe and medec-cot stage validly."""
    stage = medec_stage(request)
    if stage == "paraphrase":
        return paraphrase(quoted_note(first_user_message(request)))
    if stage == "reasoning":
        return reasoning_reply(request)
    if stage == "critic":
        return critic_reply(request)
    if stage == "generator_error":
        return generator_error_reply(request)
    return REASONING_WORDS
