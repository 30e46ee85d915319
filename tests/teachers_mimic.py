"""A scripted teacher for `mimic-dialogue`: reads the packet from the prompt and answers with a
chronological conversation that cites only what the packet shows."""

from __future__ import annotations

import json
import re
from typing import Any

from .teachers import first_user_message


def is_mimic_prompt(request: dict[str, Any]) -> bool:
    return "Write the conversation of this hospital stay" in first_user_message(request)


def packet_bits(text: str) -> dict[str, Any]:
    days = int(re.search(r"hospital days: (\d+)", text).group(1))
    lab = re.search(r"label=([^|\n]+) \| value=([^|\n]+)", text)
    diagnosis = re.search(r"long_title=([^|\n]+)", text)
    drug = re.search(r"\| drug=([^|\n]+)", text)
    return {
        "days": days,
        "lab": (lab.group(1).strip(), lab.group(2).strip()) if lab else None,
        "diagnosis": diagnosis.group(1).strip() if diagnosis else None,
        "drug": drug.group(1).strip() if drug else None,
    }


def conversation(text: str) -> dict[str, Any]:
    bits = packet_bits(text)
    last = bits["days"]
    middle = max(1, (last + 1) // 2)
    diagnosis = bits["diagnosis"] or "your illness"
    turns = [
        ("doctor", 1, "admission", "Hello, I am the admitting doctor. What brought you in?", []),
        ("patient", 1, "admission", "I have felt very unwell for two days.", []),
        (
            "doctor",
            1,
            "admission",
            f"Your tests point to {diagnosis.lower()}; we will treat it here.",
            [bits["diagnosis"]] if bits["diagnosis"] else [],
        ),
    ]
    if bits["lab"]:
        label, value = bits["lab"]
        turns.append(("doctor", 1, "admission", f"Your {label} was {value} on arrival.", [label]))
    turns += [
        ("nurse", middle, "hospital_course", "I am here to give your morning medicines.", []),
        (
            "patient",
            middle,
            "hospital_course",
            "I feel a little better today.",
            [],
        ),
        (
            "doctor",
            middle,
            "hospital_course",
            "That is good to hear; we will keep checking on you every morning.",
            [],
        ),
        (
            "doctor",
            last,
            "discharge",
            f"You can go home today; keep taking {bits['drug'] or 'your medicines'} as listed.",
            [bits["drug"]] if bits["drug"] else [],
        ),
        ("patient", last, "discharge", "Thank you, I understand the plan.", []),
    ]
    return {
        "turns": [
            {"speaker": s, "day": d, "phase": p, "text": t, "cites": c} for s, d, p, t, c in turns
        ]
    }


def mimic_teacher(request: dict[str, Any]) -> str:
    """Answers the conversation stage (and its repairs) correctly."""
    return json.dumps(conversation(first_user_message(request)))


def backwards_conversation(request: dict[str, Any]) -> str:
    """A conversation whose days run backwards and that cites a lab the packet lacks."""
    reply = conversation(first_user_message(request))
    reply["turns"][0]["day"] = 3
    reply["turns"][1]["cites"] = ["Serum unobtainium"]
    return json.dumps(reply)
