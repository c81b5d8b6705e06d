"""One padded batch of generation for an in-process transformers model: left padding, attention mask,
per-row sampling streams, raw-model log-probabilities of the sampled tokens, stop strings, and reuse of
stored key/value prefixes. ``lmrl.agents.batching`` gathers concurrent episodes' requests into these
batches (its docstring says what each caller gets)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    StaticCache,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.cache_utils import StaticLayer

from lmrl.agents.prefix_store import PrefixStore


class EngineClosed(RuntimeError):
    """The model was released while a request was waiting."""


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """Per-request sampling settings; requests batch together only when these are equal."""

    max_new_tokens: int = 64
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    stop: tuple[str, ...] = ()
    # transformers LogitsProcessor objects applied to the raw logits before temperature/top-p/top-k
    # (value-guided decoding: logits + beta * Q). Compared by identity.
    logits_processors: tuple[Any, ...] = ()


@dataclass(slots=True)
class GenerationResult:
    text: str
    token_ids: list[int]
    logprobs: list[float]
    prompt_tokens: int
    finish_reason: str
    batch_size: int = 1


def generate_padded(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    options: GenerationOptions,
    *,
    eos_token_ids: frozenset[int] | Sequence[int] = (),
    pad_token_id: int = 0,
    prefix_store: PrefixStore | None = None,
    cancelled: Callable[[], bool] | None = None,
    seeds: Sequence[int | None] | None = None,
) -> list[GenerationResult]:
    """Generate for several prompts at once: left padding, attention mask, raw-logit logprobs.

    With a ``prefix_store``, each row reuses the stored key/value states of the longest prefix it
    shares with an earlier request and computes only the rest. The batch computes the last ``width``
    tokens of every row, ``width`` being the longest part any row has to compute; a row that could
    reuse more recomputes a few of its tokens in what would otherwise be padding, which keeps every
    row contiguous: ``[padding][reused][computed][reply]``. Position ids come from the attention mask,
    so every row sees the same positions as it would alone. Afterwards each row's prompt and reply
    are stored for the next turn. ``seeds`` (one per prompt, or None) give rows their own sampling
    streams, so a row samples the same tokens alone or in any batch (up to float rounding).
    """
    if not prompts or min(len(p) for p in prompts) == 0:
        raise ValueError("empty prompt")
    eos = frozenset(eos_token_ids)
    device = model.device
    rows = len(prompts)
    matches = prefix_store.plan(model, prompts) if prefix_store is not None else [(None, 0)] * rows
    width = max(len(p) - length for p, (_, length) in zip(prompts, matches, strict=True))
    reused = [(entry, max(0, len(p) - width)) for p, (entry, _) in zip(prompts, matches, strict=True)]
    start = max(length for _, length in reused)  # columns of reused states
    width += start
    input_ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((rows, width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    recorder = _RawLogprobs()
    processors: list[Any] = [recorder, *options.logits_processors]
    processors += _sampling_warpers(options, seeds)
    stopping = StoppingCriteriaList()
    if options.stop:
        stopping.append(_StopStrings(tokenizer, options.stop, width))
    if cancelled is not None:
        stopping.append(_StopWhen(cancelled))
    # Always "greedy" for transformers: when sampling, our last processor has already drawn each row's
    # token and leaves it the only finite score (see ``_Sample``).
    extra: dict[str, Any] = {"do_sample": False}
    cache = new_cache(model, rows, width + options.max_new_tokens)
    if prefix_store is not None:
        prefix_store.fill(cache, reused, start, sum(map(len, prompts)))
    with torch.inference_mode():
        sequences = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=options.max_new_tokens,
            **extra,
            **{CACHE_KWARG: cache},
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=stopping,
            eos_token_id=sorted(eos) or None,
            pad_token_id=pad_token_id,
            return_dict_in_generate=False,
        )
        logprobs = recorder.finish(sequences)  # (batch, steps)
    if cancelled is not None and cancelled():
        raise EngineClosed("the local model was released")
    new = sequences[:, width:].tolist()
    logprob_rows = logprobs.tolist()
    results = []
    for row, tokens in enumerate(new):
        results.append(
            _finish_row(tokenizer, tokens, logprob_rows[row], len(prompts[row]), options, eos, len(prompts))
        )
    if prefix_store is not None:
        # The cache holds every generated token but the last (it was never fed back).
        fed = sequences.shape[1] - width - 1
        kept = []
        for row, result in enumerate(results):
            reply = result.token_ids[: max(0, fed)]
            first = width - len(prompts[row])
            kept.append((prompts[row] + reply, len(prompts[row]), first, matches[row]))
        with torch.inference_mode():
            prefix_store.keep(cache, kept)
    return results


def _cache_kwarg() -> str:
    """``generate``'s name for a cache passed in: ``cache`` from transformers 5.24 (``past_key_values``,
    deprecated there, before)."""
    from transformers.generation import utils

    return "cache" if "cache" in getattr(utils, "ALL_CACHE_NAMES", ()) else "past_key_values"


CACHE_KWARG = _cache_kwarg()  # public: the re-ranker (lmrl.finetune.guidance) passes caches too


def output_cache(out: Any) -> Any:
    """The cache a forward returned: ``out.cache`` from transformers 5.24, ``out.past_key_values``
    before (reading that name on 5.24 logs a deprecation warning)."""
    return getattr(out, CACHE_KWARG)


def new_cache(model: Any, rows: int, length: int) -> Any:
    """A key/value cache for one batch: preallocated (``StaticCache``: every new token is written in
    place) when the model's layers allow it; transformers' default growing cache concatenates the
    whole batch's keys and values at every step, which for SmolLM2 at batch 32 on a CPU was half of
    all the time spent."""
    cache: Any = StaticCache(config=model.config, max_cache_len=length)
    if any(type(layer) is not StaticLayer for layer in cache.layers):  # sliding windows, recurrent state
        cache = DynamicCache(config=model.config)
    return cache


def _finish_row(
    tokenizer: Any,
    tokens: list[int],
    logprobs: list[float],
    prompt_tokens: int,
    options: GenerationOptions,
    eos: frozenset[int],
    batch_size: int,
) -> GenerationResult:
    finish = "length"
    for index, token in enumerate(tokens):
        if token in eos:
            tokens = tokens[: index + 1]
            finish = "stop"
            break
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    if options.stop:
        cut = _first_stop(text, options.stop)
        if cut is not None:
            # Keep the tokens up to the one that completed the stop string (what was sampled before
            # generation halted); the text ends before the stop string.
            keep = _shortest_prefix_with_stop(tokenizer, tokens, options.stop)
            tokens = tokens[:keep]
            text = text[:cut]
            finish = "stop"
    return GenerationResult(
        text=text,
        token_ids=tokens,
        logprobs=[float(x) for x in logprobs[: len(tokens)]],
        prompt_tokens=prompt_tokens,
        finish_reason=finish,
        batch_size=batch_size,
    )


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for s in stops if s and (i := text.find(s)) >= 0]
    return min(found) if found else None


def _shortest_prefix_with_stop(tokenizer: Any, tokens: list[int], stops: Sequence[str]) -> int:
    """Smallest k such that decode(tokens[:k]) contains a stop string (binary search; containment
    only grows with k)."""
    low, high = 1, len(tokens)
    while low < high:
        mid = (low + high) // 2
        if _first_stop(tokenizer.decode(tokens[:mid], skip_special_tokens=True), stops) is None:
            low = mid + 1
        else:
            high = mid
    return high


def _sampling_warpers(options: GenerationOptions, seeds: Sequence[int | None] | None = None) -> list[Any]:
    if options.temperature <= 0:
        return []  # greedy: argmax of the (possibly value-guided) logits
    warpers: list[Any] = []
    if options.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(options.temperature))
    if options.top_k > 0:
        warpers.append(TopKLogitsWarper(options.top_k))
    if options.top_p < 1.0:
        warpers.append(TopPLogitsWarper(options.top_p))
    return [*warpers, _Sample(seeds)]


class _Sample(LogitsProcessor):
    """Draws each row's next token from ``softmax(scores)`` by inverse CDF (one uniform number per row,
    from torch's global generator) and returns scores where only that token is finite, so greedy
    selection picks it. transformers' ``torch.multinomial`` draws an exponential variate for every
    vocabulary entry of every row instead: for SmolLM2 at batch 32 on a CPU, 6% of all the time.
    A row with a seed draws from a generator of its own instead."""

    def __init__(self, seeds: Sequence[int | None] | None = None) -> None:
        self.streams = None
        if seeds is not None and any(seed is not None for seed in seeds):
            self.streams = [None if seed is None else torch.Generator().manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        probs = torch.softmax(scores.float(), dim=-1)
        cdf = probs.cumsum_(dim=-1)
        if self.streams is None:
            uniform = torch.rand((scores.shape[0], 1), device=scores.device)
        else:
            uniform = torch.cat([torch.rand((1, 1), generator=stream) for stream in self.streams])
            uniform = uniform.to(scores.device)
        draw = uniform * cdf[:, -1:]
        picked = torch.searchsorted(cdf, draw, right=True).clamp_(max=scores.shape[-1] - 1)
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter_(1, picked, 0.0)


class _RawLogprobs(LogitsProcessor):
    """A pass-through logits processor placed first: keeps ``log_softmax`` of the raw logits of the
    current step and, one step later, picks out the probability of the token that was sampled.
    Only one step's distribution is alive at a time (vs ``output_logits``: batch x steps x vocab)."""

    def __init__(self) -> None:
        self._last: Any = None
        self._picked: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self._last is not None:
            self._picked.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: Any) -> Any:
        if self._last is not None:
            self._picked.append(self._last.gather(1, sequences[:, -1:]).squeeze(1))
            self._last = None
        if not self._picked:
            return torch.zeros((sequences.shape[0], 0))
        return torch.stack(self._picked, dim=1).cpu()


class _StopWhen(StoppingCriteria):
    """Ends the whole batch at the next token once ``flag()`` is true (the engine is closing)."""

    def __init__(self, flag: Callable[[], bool]) -> None:
        self.flag = flag

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        return torch.full((input_ids.shape[0],), bool(self.flag()), dtype=torch.bool, device=input_ids.device)


class _StopStrings(StoppingCriteria):
    """Marks a row finished once its generated text contains a stop string (checks a short tail)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        self.prompt_width = prompt_width
        # A token decodes to at least one byte and a character has at most 4 bytes.
        self.tail = 4 * max((len(s) for s in self.stops), default=1) + 1

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        generated = input_ids[:, self.prompt_width :]
        tails = self.tokenizer.batch_decode(generated[:, -self.tail :], skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
