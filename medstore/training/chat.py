"""A recipe's chat form as SFT wants it: reasoning wrapped in ``<think>`` tags, the tags
Qwen3- and DeepSeek-R1-style students are trained to write."""

from __future__ import annotations

import re
from typing import Any

from medstore.recipes.base import Recipe

# Reasoning tags teachers and older pipelines use; SFT targets (Qwen3, DeepSeek-R1) expect <think>.
REASONING_TAGS = ("reasoning", "thinking", "thought", "thoughts", "chain_of_thought", "cot")
OPEN_TAG = re.compile(rf"<\s*({'|'.join(REASONING_TAGS)})\s*>", re.IGNORECASE)
CLOSE_TAG = re.compile(rf"<\s*/\s*({'|'.join(REASONING_TAGS)})\s*>", re.IGNORECASE)


def to_think_tags(text: str) -> str:
    """``<reasoning>…</reasoning>`` (and <thinking>, <thought>, …) become ``<think>…</think>``."""
    return CLOSE_TAG.sub("</think>", OPEN_TAG.sub("<think>", text))


def chat_messages(recipe: Recipe, sample: dict[str, Any]) -> tuple[list[dict] | None, bool]:
    """The recipe's chat form with reasoning tags converted, and whether the answer had any;
    (None, False) if the recipe has no chat form."""
    try:
        messages = recipe.to_messages(sample)
    except NotImplementedError:
        return None, False
    converted = False
    result = []
    for message in messages:
        content = message["content"]
        # The system prompt names the tags too ("reason inside <reasoning> tags"): it must ask
        # for the tags the student is trained to write.
        if message["role"] in ("system", "assistant"):
            new_content = to_think_tags(content)
            if message["role"] == "assistant":
                converted = converted or new_content != content
            content = new_content
        result.append({"role": message["role"], "content": content})
    return result, converted


def prompt_completion(messages: list[dict[str, str]]) -> tuple[list[dict], list[dict]]:
    """The chat as TRL's conversational prompt/completion: every turn before the last, and the
    last (the assistant's answer the loss is on)."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("a chat for training ends with the assistant's answer")
    return messages[:-1], messages[-1:]
