"""Samples and outputs as people read them: conversations as a chat, long texts as markdown
(raw HTML escaped, never passed through), JSON pretty-printed, everything else as labelled
fields. Every function returns markup that is safe to put in a page as is."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from medstore.warehouse.samples import (
    conversation_turns,
    find_conversation,
    turn_speaker,
    turn_text,
)

LONG_TEXT = 80  # characters: a string longer than this (or with a line break) is markdown
PATIENT_SPEAKERS = {"patient", "user", "human"}


@cache
def markdown_parser() -> MarkdownIt:
    """CommonMark plus tables; ``html: False`` escapes any raw HTML in the text, and
    markdown-it refuses javascript:/vbscript:/data: links."""
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str) -> Markup:
    return Markup('<div class="medstore-markdown">{}</div>').format(
        Markup(markdown_parser().render(text))
    )


def pretty_json(value: Any) -> Markup:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return Markup('<pre class="medstore-json">{}</pre>').format(text)


def render_output(text: str | None) -> Markup:
    """A raw teacher output: pretty JSON when it is JSON, verbatim when it only looks like JSON
    (an unparseable answer is shown exactly as it came), markdown otherwise."""
    if text is None:
        return Markup('<p class="medstore-empty">(no output)</p>')
    stripped = text.strip()
    try:
        decoded = json.loads(stripped)
    except json.JSONDecodeError:
        pass
    else:
        turns = find_turns(decoded)
        if turns is None:
            return pretty_json(decoded)
        return chat(turns) + Markup(
            '<details class="medstore-verbatim"><summary>as JSON</summary>{}</details>'
        ).format(pretty_json(decoded))
    if stripped[:1] in ("{", "[") or stripped.startswith("```"):
        return Markup('<pre class="medstore-text medstore-raw-output">{}</pre>').format(text)
    return markdown(text) + folded_verbatim(text)


def find_turns(value: Any) -> list[dict[str, Any]] | None:
    """A conversation that is the value, or one of its fields (a stage's JSON output)."""
    turns = conversation_turns(value)
    if turns is None and isinstance(value, dict):
        turns = find_conversation(value)
    return turns


def folded_verbatim(text: str) -> Markup:
    return Markup(
        '<details class="medstore-verbatim"><summary>verbatim</summary>'
        '<pre class="medstore-text medstore-raw-output">{}</pre></details>'
    ).format(text)


def render_value(value: Any, depth: int = 0) -> Markup:
    """Any decoded JSON value: a chat, markdown, a list or labelled fields."""
    turns = conversation_turns(value)
    if turns is not None:
        return chat(turns)
    if isinstance(value, dict):
        return fields(value, depth)
    if isinstance(value, list):
        if not value:
            return Markup('<span class="medstore-empty">none</span>')
        if is_flat_records(value):
            return records_table(value)
        items = Markup("").join(
            Markup("<li>{}</li>").format(render_value(item, depth + 1)) for item in value
        )
        return Markup('<ul class="medstore-list">{}</ul>').format(items)
    if isinstance(value, str):
        if len(value) > LONG_TEXT or "\n" in value:
            return markdown(value)
        return Markup('<span class="medstore-value">{}</span>').format(value)
    if value is None:
        return Markup('<span class="medstore-empty">—</span>')
    return Markup("<code>{}</code>").format(json.dumps(value))


def is_flat_records(items: list[Any]) -> bool:
    """A list of dicts with the same keys and scalar values: a table reads best."""
    if not all(isinstance(item, dict) for item in items):
        return False
    keys = list(items[0])
    return all(
        list(item) == keys and not any(isinstance(v, dict | list) for v in item.values())
        for item in items
    )


def records_table(items: list[dict[str, Any]]) -> Markup:
    head = Markup("").join(Markup("<th>{}</th>").format(key.replace("_", " ")) for key in items[0])
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(
            Markup("").join(Markup("<td>{}</td>").format(render_value(v, 9)) for v in item.values())
        )
        for item in items
    )
    return Markup('<table class="medstore-records"><thead><tr>{}</tr></thead>{}</table>').format(
        head, body
    )


def fields(record: dict[str, Any], depth: int) -> Markup:
    rows = Markup("").join(
        Markup("<dt>{}</dt><dd>{}</dd>").format(
            key.replace("_", " "), render_value(item, depth + 1)
        )
        for key, item in record.items()
    )
    return Markup('<dl class="medstore-fields medstore-depth-{}">{}</dl>').format(
        min(depth, 3), rows
    )


def chat(turns: list[dict[str, Any]]) -> Markup:
    """A conversation: one bubble per turn, the patient's on the left, the other side's on the
    right, with the turn's other fields (day, phase, cites) in its header."""
    bubbles = []
    for turn in turns:
        speaker = turn_speaker(turn) or "?"
        side = "patient" if speaker.lower() in PATIENT_SPEAKERS else "clinician"
        extras = [
            f"{key} {format_extra(item)}"
            for key, item in turn.items()
            if key not in ("speaker", "role", "from", "text", "content", "utterance", "value")
            and item not in (None, "", [])
        ]
        bubbles.append(
            Markup(
                '<div class="medstore-turn medstore-turn-{}"><div class="medstore-turn-head">'
                "<strong>{}</strong> <span>{}</span></div>{}</div>"
            ).format(side, speaker, " · ".join(extras), markdown(turn_text(turn) or ""))
        )
    return Markup('<div class="medstore-chat">{}</div>').format(Markup("").join(bubbles))


def format_extra(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
