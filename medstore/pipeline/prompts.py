"""Versioned prompt templates: one file per recipe stage, hashed into every request event.

A template file has a ``## system`` section and a ``## user`` section. ``$name`` / ``${name}``
placeholders are filled from the stage's variables (dicts and lists are rendered as JSON), so
literal JSON braces in a prompt need no escaping.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from medstore.resources import resource_dir
from medstore.warehouse.hashing import content_hash


class PromptError(Exception):
    pass


@dataclass(frozen=True)
class PromptTemplate:
    name: str  # e.g. "consult/profile"
    system: str
    user: str
    hash: str

    def render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        values = {key: render_value(value) for key, value in variables.items()}
        try:
            return [
                {
                    "role": "system",
                    "content": string.Template(self.system).substitute(values).strip(),
                },
                {"role": "user", "content": string.Template(self.user).substitute(values).strip()},
            ]
        except KeyError as exc:
            raise PromptError(f"prompt {self.name}: no value for placeholder {exc}") from exc


def render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def parse_template(name: str, text: str) -> PromptTemplate:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        header = line.strip().lower()
        if header in ("## system", "## user"):
            current = header[3:]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    if "user" not in sections:
        raise PromptError(f"prompt {name}: needs a '## user' section")
    return PromptTemplate(
        name=name,
        system="\n".join(sections.get("system", [])),
        user="\n".join(sections["user"]),
        hash=content_hash(text),
    )


def template_from_file(name: str, path: str | Path) -> PromptTemplate:
    """A template from any file (a plugin's own prompts), named ``name`` in the log."""
    return parse_template(name, Path(path).read_text(encoding="utf-8"))


@cache
def load_template(name: str) -> PromptTemplate:
    """Load ``prompts/<name>.md``, e.g. ``load_template("consult/profile")``."""
    path: Path = resource_dir("prompts") / f"{name}.md"
    if not path.exists():
        raise PromptError(f"prompt template {path} does not exist")
    return parse_template(name, path.read_text(encoding="utf-8"))
