"""Key/value states of earlier prompts, kept so that later prompts starting with the same tokens skip them.

A multi-turn episode's prompt at turn t is its prompt at turn t-1, the reply, and a new observation; every
episode of a task starts with the same system prompt. Recomputing those tokens at every turn is most of
the work of a local model on a CPU (prompt processing does not get cheaper by batching, decoding does).
``PrefixStore`` keeps, for each answered request, the key/value states of its prompt and the tokens it
generated, and hands a later prompt the longest stored run of tokens it starts with, from whichever
entry holds it: the same episode's previous turn, or another episode's system prompt.

Lookup is by chained block hashes (vLLM's automatic prefix caching works the same way): the tokens are
cut into blocks of ``block`` tokens and block i is keyed by a hash of blocks 0..i, so one dict lookup
per block finds the longest stored prefix; the match is then checked token by token (a hash collision
costs nothing but the check) and extended past the last full block.

Memory: each entry holds ``layers x 2 x heads x tokens x head_dim`` values in the model's dtype (SmolLM2-
135M in float32: 46 KB per token). Entries go least recently used first once ``budget_bytes`` is
exceeded. A prompt that contains an entry's whole prompt continues that conversation: the entry is
replaced by the new one at once (its reply may have been re-tokenized differently in the new prompt,
so the entry's tail is of no further use). Only models
whose attention layers keep plain full key/value caches are supported (``supported`` is false for
sliding windows or recurrent state, and the store then stays empty).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache, StaticCache
from transformers.cache_utils import StaticLayer


@dataclass(eq=False, slots=True)
class StoredPrefix:
    """The tokens of one prompt (and reply) and their key/value states, one (keys, values) per layer,
    each ``[1, heads, len(tokens), head_dim]``; the first ``prompt_tokens`` tokens were the prompt."""

    tokens: list[int]
    layers: list[tuple[Any, Any]]
    nbytes: int
    prompt_tokens: int
    hashes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class StoreStats:
    lookups: int = 0
    hits: int = 0
    tokens_reused: int = 0
    tokens_looked_up: int = 0
    stored: int = 0
    evicted: int = 0

    @property
    def reuse_rate(self) -> float:
        """Share of prompt tokens whose states came from the store."""
        return self.tokens_reused / self.tokens_looked_up if self.tokens_looked_up else 0.0


Match = tuple[StoredPrefix | None, int]  # the entry and how many leading prompt tokens it provides


class PrefixStore:
    def __init__(self, budget_bytes: int, *, min_tokens: int = 32, block: int = 16) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self.min_tokens = min_tokens
        self.block = block
        self.entries: OrderedDict[int, StoredPrefix] = OrderedDict()  # id(entry) -> entry, LRU first
        self._blocks: dict[int, StoredPrefix] = {}  # chained block hash -> newest entry holding it
        self.nbytes = 0
        self.supported: bool | None = None
        self.stats = StoreStats()

    def describe(self) -> dict[str, Any]:
        """The settings (for a run's manifest); what happened is in ``stats``."""
        return {"budget_mb": round(self.budget_bytes / 2**20, 1), "block": self.block}

    # --- lookup ----------------------------------------------------------------------------------
    def _hashes(self, tokens: Sequence[int]) -> list[int]:
        """One hash per full block, each covering every token up to the block's end."""
        hashes = []
        previous = 0
        size = self.block
        for end in range(size, len(tokens) + 1, size):
            previous = hash((previous, *tokens[end - size : end]))
            hashes.append(previous)
        return hashes

    def match(self, prompt: list[int]) -> Match:
        """The stored entry sharing the longest prefix with ``prompt`` (at most ``len(prompt) - 1``
        tokens: the last prompt token is always computed, its logits start generation)."""
        limit = len(prompt) - 1
        if self.supported is False or limit < self.min_tokens:
            return None, 0
        hashes = self._hashes(prompt)
        for index in range(len(hashes) - 1, -1, -1):
            entry = self._blocks.get(hashes[index])
            if entry is None:
                continue
            covered = (index + 1) * self.block
            if entry.tokens[:covered] != prompt[:covered]:
                continue  # a hash collision
            end = min(limit, len(entry.tokens))
            length = min(covered, end)
            while length < end and entry.tokens[length] == prompt[length]:
                length += 1
            if length < self.min_tokens:
                return None, 0
            return entry, length
        return None, 0

    def plan(self, model: Any, prompts: list[list[int]]) -> list[Match]:
        """For each prompt, the entry and the length it could reuse. A prefix that the whole batch
        shares but the store lacks (the system prompt, on a batch of first turns) is computed once
        first."""
        if self.supported is None:
            layers = StaticCache(config=model.config, max_cache_len=1).layers
            # ``fill`` writes into transformers' static layers directly; anything else: no reuse.
            self.supported = all(
                type(layer) is StaticLayer
                and all(hasattr(layer, name) for name in ("lazy_initialization", "cumulative_length"))
                for layer in layers
            )
        matches = [self.match(p) for p in prompts]
        if self.supported is not False and len(prompts) > 1:
            common = _common_prefix_length(prompts)
            missing = sum(max(0, common - length) for _, length in matches)
            if common >= self.min_tokens and missing > 2 * common:
                self._compute(model, prompts[0][:common])
                matches = [self.match(p) for p in prompts]
        for entry, _ in matches:
            if entry is not None:
                self.entries.move_to_end(id(entry))
        return matches

    # --- storing ---------------------------------------------------------------------------------
    def keep(self, cache: Any, rows: list[tuple[list[int], int, int, Match]]) -> None:
        """Store each row of a finished batch: ``(tokens, prompt_tokens, first, match)`` with the
        tokens whose states the batch cache holds for that row (prompt, then reply) from column
        ``first`` on, and the match the row was planned with."""
        if not self.supported:
            return
        layers = cache.layers
        for row, (tokens, prompt_tokens, first, (used, length)) in enumerate(rows):
            if len(tokens) < self.min_tokens:
                continue
            end = first + len(tokens)
            states = [
                (
                    layer.keys[row : row + 1, :, first:end].clone(),
                    layer.values[row : row + 1, :, first:end].clone(),
                )
                for layer in layers
            ]
            if used is not None and length >= used.prompt_tokens:
                self._remove(used)  # this conversation moved on
            self._add(tokens, states, prompt_tokens)

    def _compute(self, model: Any, prefix: list[int]) -> None:
        from lmrl.agents.padded_generation import output_cache  # it imports this module

        with torch.inference_mode():
            cache = output_cache(
                model(input_ids=torch.tensor([prefix], dtype=torch.long, device=model.device), use_cache=True)
            )
        layers = getattr(cache, "layers", None)
        if not isinstance(cache, DynamicCache) or not layers:
            self.supported = False  # a transformers version whose caches we do not know
            return
        self._add(list(prefix), [(layer.keys, layer.values) for layer in layers], len(prefix))

    def _add(self, tokens: list[int], states: list[tuple[Any, Any]], prompt_tokens: int) -> None:
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in states)
        if nbytes > self.budget_bytes:
            return
        while self.entries and self.nbytes + nbytes > self.budget_bytes:
            _, oldest = self.entries.popitem(last=False)
            self._forget(oldest)
            self.stats.evicted += 1
        entry = StoredPrefix(tokens, states, nbytes, prompt_tokens, self._hashes(tokens))
        self.entries[id(entry)] = entry
        self.nbytes += nbytes
        for key in entry.hashes:
            self._blocks[key] = entry
        self.stats.stored += 1

    def _remove(self, entry: StoredPrefix) -> None:
        if self.entries.pop(id(entry), None) is not None:
            self._forget(entry)

    def _forget(self, entry: StoredPrefix) -> None:
        self.nbytes -= entry.nbytes
        for key in entry.hashes:
            if self._blocks.get(key) is entry:
                del self._blocks[key]

    # --- building a batch's cache ----------------------------------------------------------------
    def fill(self, cache: Any, matches: list[Match], width: int, prompt_tokens: int) -> None:
        """Write the reused states into a fresh, empty ``StaticCache`` for the batch: row i holds its
        ``length`` reused tokens right-aligned in the first ``width`` columns. ``prompt_tokens`` (the
        batch's total) is for the statistics."""
        stats = self.stats
        stats.tokens_looked_up += prompt_tokens
        for entry, length in matches:
            stats.lookups += 1
            stats.hits += entry is not None and length > 0
            stats.tokens_reused += length
        if width == 0:
            return
        sample = next(entry for entry, _ in matches if entry is not None)
        rows = len(matches)
        # Straight into the preallocated batch cache (zeros, masked, where a row reuses nothing).
        for index, layer in enumerate(cache.layers):
            keys, values = sample.layers[index]
            layer.lazy_initialization(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
            for row, (entry, length) in enumerate(matches):
                if entry is not None and length:
                    row_keys, row_values = entry.layers[index]
                    layer.keys[row, :, width - length : width] = row_keys[0, :, :length]
                    layer.values[row, :, width - length : width] = row_values[0, :, :length]
            layer.cumulative_length.fill_(width)


def _common_prefix_length(prompts: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving at least one token of each to compute."""
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    length = 0
    while length < limit and all(p[length] == first[length] for p in prompts):
        length += 1
    return length
