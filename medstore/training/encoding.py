"""Conversations as token ids with labels: the base model's chat template renders each one, and
the loss is on assistant tokens only (every other label is -100). TRL's SFTTrainer takes the
rows as they are (input_ids, labels) and pads each batch to its longest row, or packs them.

Over-long conversations: with ``overlong="truncate"`` (the default) a conversation longer than
``max_seq_len`` tokens is cut at the limit and counted; one left with no assistant token is
dropped and counted. With ``overlong="refuse"`` any over-long conversation stops the run before
training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medstore.training.config import TrainError

IGNORE_INDEX = -100


@dataclass
class Encoded:
    examples: list[dict[str, list[int]]]
    truncated: int = 0
    dropped: int = 0
    tokens: int = 0
    target_tokens: int = 0


def render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple]]:
    """The conversation as the model sees it, and the character spans of the assistant turns
    (their text and end-of-turn marker): the only tokens the loss is computed on."""
    full = render(tokenizer, messages)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = render(tokenizer, messages[: index + 1]).rstrip()
        if full.startswith(before) and full.startswith(through) and len(through) > len(before):
            spans.append((len(before), len(through)))
    if not spans:  # a template that rewrites earlier turns: learn the last answer only
        before = render(tokenizer, messages[:-1], generation_prompt=True)
        if messages[-1]["role"] != "assistant" or not full.startswith(before):
            raise TrainError(
                "the base model's chat template renders conversations inconsistently; "
                "cannot tell the assistant tokens apart"
            )
        spans.append((len(before), len(full.rstrip())))
    return full, spans


def text_pair_spans(tokenizer: Any, pair: dict[str, str]) -> tuple[str, list[tuple]]:
    """A plain prompt + completion (no chat template, as TRL trains them): the completion and
    the end-of-text marker are learned."""
    text = pair["prompt"] + pair["completion"] + (tokenizer.eos_token or "")
    return text, [(len(pair["prompt"]), len(text))]


def encode_conversations(
    tokenizer: Any, conversations: list[Any], max_seq_len: int, overlong: str
) -> Encoded:
    """Token ids with labels (-100 outside assistant turns, or outside the completion of a
    text pair), cut to ``max_seq_len``."""
    if not getattr(tokenizer, "is_fast", False):
        raise TrainError("the base model needs a fast tokenizer (character offsets for masking)")
    texts, all_spans = [], []
    for row in conversations:
        text, spans = (
            text_pair_spans(tokenizer, row)
            if isinstance(row, dict)
            else (assistant_spans(tokenizer, row))
        )
        texts.append(text)
        all_spans.append(spans)
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    result = Encoded(examples=[])
    too_long = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_seq_len]
    if too_long and overlong == "refuse":
        longest = max(len(encoded["input_ids"][i]) for i in too_long)
        raise TrainError(
            f"{len(too_long)} conversation(s) exceed --max-seq-len {max_seq_len} tokens (longest "
            f"{longest}); raise the limit or use --overlong truncate"
        )
    for ids, offsets, spans in zip(
        encoded["input_ids"], encoded["offset_mapping"], all_spans, strict=True
    ):
        labels = [
            token if any(start <= begin < end for start, end in spans) else IGNORE_INDEX
            for token, (begin, _) in zip(ids, offsets, strict=True)
        ]
        if len(ids) > max_seq_len:
            result.truncated += 1
            ids, labels = ids[:max_seq_len], labels[:max_seq_len]
        targets = sum(label != IGNORE_INDEX for label in labels)
        if not targets:
            result.dropped += 1
            continue
        result.examples.append({"input_ids": list(ids), "labels": labels})
        result.tokens += len(ids)
        result.target_tokens += targets
    return result
