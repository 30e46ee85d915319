"""Junk teachers: schema-valid replies that are not content, in the shapes the embedded 135M model
and lazy teachers produce (turns of "]]", lists of [""], blank vitals, one differential four
times, a sentence looped 40 times). Each recipe's good teacher answers everything else, so a
test can break exactly one stage, one way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .teachers import DIALOGUE, EXPERT, consult_stage, consult_teacher, profile_reply
from .teachers_medec import critic_reply, medec_stage, reasoning_reply

LOOP = " ".join(["The patient is fine and the plan is fine."] * 40)

# The embedded model's known junk shapes (issue 19), as consult stage replies.
JUNK_DIALOGUE = {"turns": [{"speaker": "doctor", "text": "]]"}] * 6}
FOUR_TURNS = {
    "turns": [
        DIALOGUE["turns"][0],
        {"speaker": "patient", "text": "}"},
        DIALOGUE["turns"][2],
        {"speaker": "patient", "text": "}"},
    ]
}
SAME_DIFFERENTIAL = {
    "condition": "depression",
    "icd10_code": "D10",
    "likelihood": "high",
    "rationale": "depression",
}
JUNK_EXPERT = {
    "differential_diagnosis": [SAME_DIFFERENTIAL] * 4,
    "risk_assessment": {"level": "low", "factors": [""]},
    "investigations": [""],
    "treatment_plan": [""],
    "red_flags": [""],
}


def junk_profile(request: dict[str, Any]) -> str:
    """The scenario's age and sex (so only the gates object), every list [""], vitals ""."""
    profile = json.loads(profile_reply(request))
    for field in ("symptoms", "past_medical_history", "medications", "allergies", "risk_factors"):
        profile[field] = [""]
    profile["vital_signs"] = {name: "" for name in profile["vital_signs"]}
    profile["chief_complaint"] = "N/A"
    return json.dumps(profile)


def consult_with(stage: str, reply: Callable[[dict[str, Any]], str] | dict | str) -> Callable:
    """The good consult teacher, except that ``stage`` always gets ``reply`` (repairs too)."""

    def responder(request: dict[str, Any]) -> str:
        if consult_stage(request) != stage:
            return consult_teacher(request)
        if callable(reply):
            return reply(request)
        return reply if isinstance(reply, str) else json.dumps(reply)

    return responder


def profile_with(**changes: Any) -> Callable[[dict[str, Any]], str]:
    """A good profile with some fields (``vital_signs__heart_rate`` for nested ones) changed."""

    def reply(request: dict[str, Any]) -> str:
        profile = json.loads(profile_reply(request))
        for key, value in changes.items():
            target = profile
            *parents, leaf = key.split("__")
            for parent in parents:
                target = target[parent]
            target[leaf] = value
        return json.dumps(profile)

    return reply


def expert_with(**changes: Any) -> dict[str, Any]:
    return {**EXPERT, **changes}


def junk_consult(request: dict[str, Any]) -> str:
    stage = consult_stage(request)
    if stage == "profile":
        return junk_profile(request)
    if stage == "dialogue":
        return json.dumps(JUNK_DIALOGUE)
    if stage == "reasoning":
        return LOOP
    return json.dumps(JUNK_EXPERT)


def junk_medec(request: dict[str, Any]) -> str:
    """Right verdicts and sentences (the recipe's own checks pass), junk reasoning."""
    stage = medec_stage(request)
    if stage == "critic":
        return json.dumps({**json.loads(critic_reply(request)), "reasoning": LOOP})
    if stage == "reasoning":
        reply = json.loads(reasoning_reply(request))
        return json.dumps({**reply, "key_clues": ["string", "string", "string"], "why_wrong": LOOP})
    return LOOP


def junk_hierarchical(request: dict[str, Any]) -> str:
    return "- Assessment: ]]\n  - ]]\n    - ]]\n  - N/A\n    - ..."


def junk_mimic(request: dict[str, Any]) -> str:
    turns = [
        {"speaker": speaker, "day": 1, "phase": "admission", "text": "]]", "cites": []}
        for speaker in ("doctor", "patient") * 3
    ]
    return json.dumps({"turns": turns})
