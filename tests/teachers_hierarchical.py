"""Scripted teachers for the `hierarchical` recipe: a rewrite that passes the structure
validator, built from the doctor's answer quoted in the prompt, and the usual ways to fail."""

from __future__ import annotations

import re
from typing import Any

from .teachers import first_user_message

ANSWER = re.compile(r"<answer>\n(?P<answer>.*?)\n</answer>", re.DOTALL)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def quoted_answer(request: dict[str, Any]) -> str:
    match = ANSWER.search(first_user_message(request))
    if match is None:
        raise ValueError("not a hierarchical rewrite prompt")
    return match.group("answer")


def is_repair(request: dict[str, Any]) -> bool:
    return any(message["role"] == "assistant" for message in request.get("messages", []))


def sentences(text: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(text.strip()) if part.strip()]


def good_rewrite(answer: str) -> str:
    """Assessment first, then the remaining sentences as details, five per group at most."""
    parts = sentences(answer)
    first, rest = parts[0], parts[1:] or parts[:1]
    groups = [rest[i : i + 5] for i in range(0, len(rest), 5)]
    lines = [f"- Assessment: {first}", "  - Key points", *(f"    - {s}" for s in groups[0])]
    if len(groups) > 1:
        lines.append("- Advice and next steps")
        for number, group in enumerate(groups[1:5], start=1):
            lines.append(f"  - Part {number}")
            lines += [f"    - {s}" for s in group]
    return "\n".join(lines)


def shallow_rewrite(answer: str) -> str:
    parts = sentences(answer)
    return "\n".join([f"- Assessment: {parts[0]}", *(f"  - {s}" for s in parts[1:5])])


def hierarchical_teacher(request: dict[str, Any]) -> str:
    """Answers every rewrite (and repair) validly."""
    return good_rewrite(quoted_answer(request))


def shallow_teacher(request: dict[str, Any]) -> str:
    """Always two levels deep: every attempt fails the depth rule, so the task is rejected."""
    return shallow_rewrite(quoted_answer(request))


def repaired_teacher(request: dict[str, Any]) -> str:
    """Too shallow at first, valid once the repair prompt quotes the violation."""
    answer = quoted_answer(request)
    return good_rewrite(answer) if is_repair(request) else shallow_rewrite(answer)
