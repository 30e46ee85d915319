"""JSON-schema constrained decoding with xgrammar: one compiled grammar per schema, one matcher
per batch row, so rows with different schemas (or none) share a forward pass.

xgrammar was chosen because it ships binary wheels (nothing to compile), works on CPU tensors,
compiles a pydantic schema ($defs/$ref, enums, minItems, nested objects) in milliseconds, and its
matchers are per sequence, which is what batching mixed requests needs. lm-format-enforcer and
outlines were the alternatives: the first pins older transformers APIs, the second pulls in a Rust
build or a large dependency tree; neither offers per-row matchers over a hand-written decode loop.

A grammar alone does not make every output valid: a model that never closes a string runs out of
``max_tokens`` mid-object. So each compiled schema knows how many tokens its shortest completion
takes, and once a row's remaining budget reaches that reserve it is *closing*: among the tokens
the grammar allows, those made only of ``"``, ``]`` and ``}`` win (a leading quote first), then
those that add a ``,`` (a required field or item still to write), and only then the model's own
choice.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from medstore.llm.base import BackendUnavailable

# Arrays without a maxItems get this one while decoding. A small greedy model that falls into
# ["x", "x", "x", ... never closes the array; bounded, it finishes and still validates against
# the caller's schema (which set no maximum).
DEFAULT_MAX_ITEMS = 8
# Closing-mode preferences, added to the logits of allowed tokens: they dwarf any model logit.
QUOTE_BONUS = 3.0e4
CLOSER_BONUS = 2.0e4
COMMA_BONUS = 1.0e4
# Slack over the simulated shortest completion: the model cuts keys and values into other tokens
# than the simulation (measured up to 1.2x as many), and a row may be mid-key or mid-number.
CLOSING_SCALE = 1.25
CLOSING_MARGIN = 8
MAX_SIMULATED_TOKENS = 1024


def require(module: str, package: str | None = None) -> ModuleType:
    """Import an optional dependency, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the local backend needs {module!r}: pip install {package or module}"
        ) from exc


# xgrammar 0.2.8 turns an optional group holding a {m,n} repeat, "(x[0-9]{1,4})?", into something
# that also accepts "[0-9]" without the "x" (so "C0101" passed the ICD-10 pattern); the same
# group written as an alternation with the empty string, "(|x[0-9]{1,4})", is enforced exactly.
OPTIONAL_GROUP = re.compile(r"\(([^()]*)\)\?")


def bound_arrays(schema: Any, max_items: int) -> Any:
    """A copy of the schema for decoding: every array without maxItems gets one (at least its
    minItems), and optional groups in patterns are spelled in the form xgrammar enforces."""
    if isinstance(schema, list):
        return [bound_arrays(item, max_items) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: bound_arrays(value, max_items) for key, value in schema.items()}
    if isinstance(schema.get("pattern"), str):
        bounded["pattern"] = OPTIONAL_GROUP.sub(r"(|\1)", schema["pattern"])
    kinds = schema.get("type")
    is_array = kinds == "array" or (isinstance(kinds, list) and "array" in kinds)
    if is_array and "maxItems" not in schema:
        bounded["maxItems"] = max(max_items, schema.get("minItems", 0))
    return bounded


@dataclass(frozen=True)
class CompiledSchema:
    grammar: Any
    closing_reserve: int  # remaining tokens at which a row starts closing its JSON


class SchemaGrammars:
    """Compiles JSON schemas against one tokenizer and hands out fresh matchers."""

    def __init__(
        self,
        tokenizer: Any,
        vocab_size: int,
        stop_ids: list[int],
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        self.xgr = require("xgrammar")
        import torch

        self.torch = torch
        self.max_items = max_items
        info = self.xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids
        )
        self.vocab_size = vocab_size
        self.closing_bonus = closing_bonus(info.decoded_vocab, vocab_size, torch)
        self.token_lengths = torch.tensor(
            [float(len(text)) for text in info.decoded_vocab[:vocab_size]]
            + [0.0] * max(0, vocab_size - len(info.decoded_vocab))
        )
        self._compiler = self.xgr.GrammarCompiler(info)
        self._compiled: dict[str, CompiledSchema] = {}
        self._lock = threading.Lock()

    def compile(self, schema: dict[str, Any]) -> CompiledSchema:
        """The compiled grammar for a schema; raises ValueError if xgrammar cannot express it."""
        # Not canonical JSON: property order is the order the model writes fields in, and a
        # schema's author put them in the order that reads (age before symptoms).
        key = json.dumps(schema, ensure_ascii=False)
        with self._lock:
            grammar = self._compiled.get(key)
            if grammar is None:
                # Compact JSON, no free whitespace: a small model given a budget should spend it
                # on content, and whitespace runs are where unconstrained models loop.
                try:
                    grammar = self._compiler.compile_json_schema(
                        json.dumps(bound_arrays(schema, self.max_items)),
                        any_whitespace=False,
                        strict_mode=True,
                    )
                except Exception as exc:  # xgrammar raises RuntimeError/InvalidJSONError
                    raise ValueError(f"schema not supported by xgrammar: {exc}") from exc
                shortest = self._shortest_completion(grammar)
                reserve = math.ceil(shortest * CLOSING_SCALE) + CLOSING_MARGIN
                self._compiled[key] = grammar = CompiledSchema(grammar, reserve)
            return grammar

    def matcher(self, compiled: CompiledSchema) -> Any:
        return self.xgr.GrammarMatcher(compiled.grammar)

    def close(self, logits: Any) -> None:
        """Steer one row's (already masked) logits towards finishing its JSON, in place."""
        logits += self.closing_bonus.to(logits.device)

    def _shortest_completion(self, grammar: Any) -> int:
        """Tokens closing mode spends writing a whole instance, the longest allowed token
        standing in for the model's choice (keys and enum values come out as a tokenizer would
        cut them).
        """
        matcher = self.xgr.GrammarMatcher(grammar)
        bitmask = self.xgr.allocate_token_bitmask(1, self.vocab_size)
        for written in range(MAX_SIMULATED_TOKENS):
            logits = self.token_lengths[None, :].clone()
            matcher.fill_next_token_bitmask(bitmask, 0)
            self.xgr.apply_token_bitmask_inplace(logits, bitmask, vocab_size=self.vocab_size)
            self.close(logits[0])
            token = int(logits[0].argmax())
            if token in matcher.stop_token_ids or not matcher.accept_token(token):
                return written
        return MAX_SIMULATED_TOKENS

    def mask(self, logits: Any, matchers: list[Any | None]) -> None:
        """Set to -inf, in place, every token a row's grammar forbids next; None rows are free."""
        rows = [row for row, matcher in enumerate(matchers) if matcher is not None]
        if not rows:
            return
        bitmask = self.xgr.allocate_token_bitmask(len(matchers), self.vocab_size)
        for row in rows:
            matchers[row].fill_next_token_bitmask(bitmask, row)
        self.xgr.apply_token_bitmask_inplace(
            logits, bitmask.to(logits.device), vocab_size=self.vocab_size, indices=rows
        )


def closing_bonus(decoded_vocab: list[bytes], vocab_size: int, torch: Any) -> Any:
    """Per-token preference of closing mode, highest first: a quote that ends the string being
    written (with any closers after it), bare closers (inside a string they are only text, hence
    second), closers with a comma; every other token gets 0."""
    bonus = torch.zeros(vocab_size)
    for token_id, text in enumerate(decoded_vocab[:vocab_size]):
        if not text:
            continue
        if text.startswith(b'"') and set(text) <= set(b'"]}'):
            bonus[token_id] = QUOTE_BONUS
        elif set(text) <= set(b"]}"):
            bonus[token_id] = CLOSER_BONUS
        elif set(text) <= set(b'"]},'):
            bonus[token_id] = COMMA_BONUS
    return bonus
