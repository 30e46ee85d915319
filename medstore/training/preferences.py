"""DPO's over-long preference pairs, measured before TRL sees them: a pair whose prompt and
longer answer exceed ``--max-seq-len`` is counted as cut (TRL cuts it); one whose prompt alone
fills the limit has no answer token left and is dropped and counted. With ``--overlong refuse``
either stops the run before it starts."""

from __future__ import annotations

from typing import Any

from medstore.training.config import TrainConfig, TrainError


def token_count(tokenizer: Any, value: Any, generation_prompt: bool = False) -> int:
    """Tokens of text, or of chat turns rendered by the chat template (as TRL renders them)."""
    if isinstance(value, str):
        return len(tokenizer(value, add_special_tokens=False)["input_ids"])
    text = tokenizer.apply_chat_template(
        value, tokenize=False, add_generation_prompt=generation_prompt
    )
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def pair_lengths(tokenizer: Any, pair: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, prompt plus the longer answer's tokens)."""
    prompt = token_count(tokenizer, pair["prompt"], generation_prompt=True)
    longest = max(
        token_count(tokenizer, pair["prompt"] + pair[key]) for key in ("chosen", "rejected")
    )
    return prompt, longest


def check_preference_lengths(
    tokenizer: Any, splits: dict[str, list[dict[str, Any]]], config: TrainConfig
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """The splits without the pairs left with no answer token, and the counts: pairs per
    split, cut and dropped."""
    limit = config.max_seq_len
    kept_splits, truncated, dropped = {}, 0, 0
    for split, pairs in splits.items():
        kept = []
        for pair in pairs:
            prompt, total = pair_lengths(tokenizer, pair)
            if prompt >= limit:
                dropped += 1
                continue
            truncated += total > limit
            kept.append(pair)
        kept_splits[split] = kept
    if (truncated or dropped) and config.overlong == "refuse":
        raise TrainError(
            f"{truncated + dropped} preference pair(s) exceed --max-seq-len {limit} tokens; raise "
            "the limit or use --overlong truncate"
        )
    if not kept_splits.get("train"):
        raise TrainError(
            f"all {dropped} training pairs were dropped: their prompts fill --max-seq-len "
            f"{limit} tokens; raise the limit"
        )
    counts = {f"{split}_examples": len(pairs) for split, pairs in kept_splits.items() if pairs}
    return kept_splits, {**counts, "truncated": truncated, "dropped": dropped}
