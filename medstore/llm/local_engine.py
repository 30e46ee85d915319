"""The local backend's decode engine: one batch of requests decoded together in a thread.

The decode loop is ours rather than ``model.generate`` so each row keeps its own sampling
parameters, its own seeded generator and its own grammar: any mix of requests can share a
batch, and a request's output does not depend on its batch-mates.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from medstore.llm.base import Completion, GenerationParams
from medstore.llm.constrained import CompiledSchema, SchemaGrammars


@dataclass
class DecodeRequest:
    """One ``complete()`` call waiting for a batch: its prompt, sampling, grammar and budget."""

    prompt_ids: list[int]
    params: GenerationParams
    grammar: CompiledSchema | None
    max_new_tokens: int
    future: asyncio.Future


@dataclass
class DecodeRow:
    """One request's decoding state inside a batch."""

    request: DecodeRequest
    matcher: Any | None
    generator: Any | None
    seed: int | None
    tokens: list[int] = field(default_factory=list)
    finish_reason: str = "length"

    @property
    def closing(self) -> bool:
        """A constrained row whose budget is down to what finishing its JSON takes."""
        grammar = self.request.grammar
        remaining = self.request.max_new_tokens - len(self.tokens)
        return grammar is not None and remaining <= grammar.closing_reserve


class DecodeEngine:
    """The loaded model plus what decoding needs: stop tokens, grammars, the context limit.

    ``reported_model`` is the model name completions carry (the weights' hash included).
    """

    def __init__(self, model: Any, tokenizer: Any, reported_model: str) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.reported_model = reported_model
        self.device = model.device
        eos = model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self.stop_ids = {i for i in [tokenizer.eos_token_id, *eos_ids] if i is not None}
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.stop_ids)
        )
        self.context_length = model.config.max_position_embeddings
        self.grammars = SchemaGrammars(tokenizer, model.config.vocab_size, sorted(self.stop_ids))

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, batch: list[DecodeRequest]) -> list[Completion]:
        """Decode a batch to completion: left padding, a shared KV cache, per-row stopping."""
        torch = self.torch
        rows = [self._row(request) for request in batch]
        width = max(len(request.prompt_ids) for request in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for index, request in enumerate(batch):
            input_ids[index, width - len(request.prompt_ids) :] = torch.tensor(request.prompt_ids)
            attention[index, width - len(request.prompt_ids) :] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        cache = new_cache(self.model)
        active = list(range(len(rows)))
        with torch.inference_mode():
            logits = self._forward(input_ids, attention, positions, cache)
            next_positions = positions[:, -1] + 1
            while active:
                tokens = self._next_tokens(logits, [rows[index] for index in active])
                keep = [
                    slot
                    for slot, (index, token) in enumerate(zip(active, tokens, strict=True))
                    if self._advance(rows[index], token)
                ]
                if not keep:
                    break
                if len(keep) < len(active):
                    selected = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(selected)
                    attention = attention[selected]
                    next_positions = next_positions[selected]
                active = [active[slot] for slot in keep]
                step_ids = torch.tensor([[tokens[slot]] for slot in keep], device=self.device)
                attention = torch.cat([attention, attention.new_ones((len(keep), 1))], dim=-1)
                logits = self._forward(step_ids, attention, next_positions[:, None], cache)
                next_positions = next_positions + 1
        return [self._completion(row, len(rows)) for row in rows]

    def _row(self, request: DecodeRequest) -> DecodeRow:
        matcher = self.grammars.matcher(request.grammar) if request.grammar is not None else None
        if request.params.temperature <= 0:
            return DecodeRow(request, matcher, None, request.params.seed)
        seed = request.params.seed
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "big") >> 1
        generator = self.torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return DecodeRow(request, matcher, generator, seed)

    def _forward(self, input_ids: Any, attention: Any, positions: Any, cache: Any) -> Any:
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return output.logits[:, -1, :].float()

    def _next_tokens(self, logits: Any, rows: list[DecodeRow]) -> list[int]:
        self.grammars.mask(logits, [row.matcher for row in rows])
        for slot, row in enumerate(rows):
            if row.closing:
                self.grammars.close(logits[slot])
        tokens = logits.argmax(dim=-1).tolist()
        for slot, row in enumerate(rows):
            if row.generator is not None:
                tokens[slot] = self._sample(logits[slot], row)
        return tokens

    def _sample(self, logits: Any, row: DecodeRow) -> int:
        torch = self.torch
        params = row.request.params
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p is None or params.top_p >= 1:
            return int(torch.multinomial(probs, 1, generator=row.generator))
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        outside = sorted_probs.cumsum(-1) - sorted_probs >= params.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        choice = torch.multinomial(sorted_probs, 1, generator=row.generator)
        return int(order[choice])

    def _advance(self, row: DecodeRow, token: int) -> bool:
        """Record a row's new token; False once the row is finished."""
        if token in self.stop_ids:
            row.finish_reason = "stop"
            return False
        row.tokens.append(token)
        if row.matcher is not None and not row.matcher.accept_token(token):
            raise RuntimeError(f"grammar refused token {token} it had allowed")
        return len(row.tokens) < row.request.max_new_tokens

    def _completion(self, row: DecodeRow, batch_size: int) -> Completion:
        extra: dict[str, Any] = {"batch_size": batch_size, "constrained": row.matcher is not None}
        if row.seed is not None:
            extra["seed"] = row.seed
        return Completion(
            text=self.tokenizer.decode(row.tokens, skip_special_tokens=True),
            input_tokens=len(row.request.prompt_ids),
            output_tokens=len(row.tokens),
            finish_reason=row.finish_reason,
            model=self.reported_model,
            extra=extra,
        )


def new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=model.config)
