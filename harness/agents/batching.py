"""Batched generation across concurrent episodes for in-process transformers models.

One ``PaddedBatchEngine`` per loaded model. ``await engine.generate(prompt, options)`` may be called by
any number of episodes at once; a single generation thread gathers the waiting requests into batches,
runs ``model.generate`` on each batch (left padding, attention mask) and hands every caller its own
result. The event loop never runs model code: it only enqueues requests and is woken when they finish.

Gathering. The thread blocks until a request arrives, then keeps collecting for at most
``window_s`` (default 10 ms) and stops early once it holds ``max_batch_size`` requests or as many as
it expects: the callers it just answered plus those already waiting, i.e. the episodes that are only
stepping their environments and will be back within milliseconds. That keeps concurrent episodes in
one batch instead of drifting into half-empty alternating batches. A batch also respects
``max_batch_tokens`` (batch size times padded prompt length plus ``max_new_tokens``); a lone request
always runs. Only requests with equal ``GenerationOptions`` share a batch.

What each caller gets (``GenerationResult``):

* ``token_ids``: the sampled tokens, exactly as sampled (never re-tokenized), up to and including the
  token that ended generation: the end-of-sequence token, or the token that completed a stop string.
* ``logprobs``: one per token id: ``log_softmax`` of the model's raw logits (temperature 1, before any
  logits processor, temperature, top-p or top-k) at the sampled token, i.e. log pi(token | context)
  of the checkpoint itself, which is what policy-gradient methods (PPO ratios, KL) need. It does not
  include the effect of value guidance or temperature on the sampling distribution.
* ``text``: the decoded tokens without special tokens, cut before the first stop string (the stop
  string itself is not returned, as with OpenAI's ``stop``). So ``text`` is a prefix of
  ``decode(token_ids)``; they differ only by the stop string and whatever followed it inside the same
  token.
* ``finish_reason``: ``"stop"`` (end-of-sequence token or stop string) or ``"length"``.

Greedy decoding (``temperature == 0``) gives the same tokens batched or alone: padding is masked and
position ids come from the attention mask. Sampling draws from torch's global generator, so sampled
text depends on which requests happened to share a batch.

Shared prefixes (``PrefixCache``): the key/value states of a prompt prefix that several requests
share (a task's system prompt, an episode's earlier turns) are computed once and reused; on a CPU
that is most of the work of a multi-turn turn.

Why not transformers' continuous batching: ``generate_batch`` / ``init_continuous_batching`` (paged
attention) was measured against this engine on a 2-core CPU (``bench/local_throughput.py
--compare-cb``, 32 maze prompts x 16 new tokens, greedy): 4.8 s vs 0.17 s for the tiny test model and
88 s vs 41 s for SmolLM2-135M. It also reports log-probabilities of the processed sampling
distribution and drops custom logits processors, which value-guided decoding needs. So the padded
engine is the one used on every device; on a GPU the same flag measures it again, and past one GPU
a serving engine (vLLM, ``transformers serve --continuous-batching``) behind the API agent is the
way to scale.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import queue
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
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
from transformers.cache_utils import DynamicLayer, StaticLayer

Encoder = Callable[[], list[int]]


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


class EngineClosed(RuntimeError):
    """The model was released while a request was waiting."""


@dataclass(eq=False, slots=True)
class _Request:
    options: GenerationOptions
    encode: Encoder
    event: anyio.Event
    token: anyio.lowlevel.EventLoopToken
    input_ids: list[int] | None = None
    result: GenerationResult | None = None
    error: BaseException | None = None
    cancelled: bool = False


@dataclass(slots=True)
class EngineStats:
    """Counters of one engine: ``requests`` answered, ``failed`` ones, tokens, time inside generate."""

    batches: int = 0
    requests: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    generate_s: float = 0.0
    max_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return (self.requests + self.failed) / self.batches if self.batches else 0.0


class PaddedBatchEngine:
    """Gathers concurrent requests into padded ``model.generate`` batches on one thread."""

    name = "padded"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 64,
        max_batch_tokens: int = 65536,
        window_s: float = 0.01,
        eos_token_ids: Sequence[int] = (),
        pad_token_id: int = 0,
        share_prefixes: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.window_s = max(0.0, float(window_s))
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        self.pad_token_id = int(pad_token_id)
        self.stats = EngineStats()
        self.prefix_cache = PrefixCache() if share_prefixes else None
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._backlog: list[_Request] = []
        self._expected = 1
        self._closed = False
        self._dead = False  # the thread has stopped answering
        self._thread = threading.Thread(target=self._run, name="lmrl-generate", daemon=True)
        self._thread.start()
        _engines.add(self)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "max_batch_size": self.max_batch_size,
            "max_batch_tokens": self.max_batch_tokens,
            "window_ms": round(self.window_s * 1000, 3),
            "share_prefixes": self.prefix_cache is not None,
        }

    # --- the caller's side (event loop) ----------------------------------------------------------
    async def generate(self, prompt: list[int] | Encoder, options: GenerationOptions) -> GenerationResult:
        """Queue one prompt (token ids, or a function the generation thread calls to get them)."""
        if self._closed:
            raise EngineClosed("the local model was released")
        if callable(prompt):
            request = _Request(options, prompt, anyio.Event(), anyio.lowlevel.current_token())
        else:
            ids = list(prompt)
            request = _Request(options, lambda: ids, anyio.Event(), anyio.lowlevel.current_token())
        self._queue.put(request)
        if self._dead:  # the thread stopped (and drained the queue) around our put: nobody will answer
            raise EngineClosed("the local model was released")
        try:
            await request.event.wait()
        except BaseException:
            request.cancelled = True  # the thread skips it if it has not started it yet
            raise
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def close(self) -> None:
        """Stop the generation thread: a batch in progress ends at its next token; every request
        still waiting (or in that batch) fails with ``EngineClosed``. Does not wait; see ``join``."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the generation thread to end (after ``close``); True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the generation thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            if not self._backlog and not self._take(block=True):
                break
            deadline = time.monotonic() + self.window_s
            while len(self._backlog) < min(self.max_batch_size, self._expected):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._take(block=True, timeout=remaining):
                    break
            while self._take(block=False):  # whatever else is already there
                pass
            if self._closed:
                break
            batch = self._select()
            if not batch:
                continue
            left = len(self._backlog)
            self._execute(batch)
            self._expected = max(1, len(batch) + left)
        self._fail_all(EngineClosed("the local model was released"))

    def _take(self, block: bool, timeout: float | None = None) -> bool:
        """Move one request from the queue to the backlog (encoding it); False if none or closing."""
        try:
            request = self._queue.get(block=block, timeout=timeout)
        except queue.Empty:
            return False
        if request is None:
            self._closed = True
            return False
        if request.cancelled:
            return True
        try:
            request.input_ids = list(request.encode())
        except Exception as error:  # a bad prompt fails its own request only
            request.error = error
            _wake([request])
            return True
        self._backlog.append(request)
        return True

    def _select(self) -> list[_Request]:
        """The oldest request and those with the same options that fit the size and token budget."""
        self._backlog = [r for r in self._backlog if not r.cancelled]
        if not self._backlog:
            return []
        options = self._backlog[0].options
        batch: list[_Request] = []
        longest = 0
        for request in self._backlog:
            if request.options != options:
                continue
            assert request.input_ids is not None
            length = max(longest, len(request.input_ids))
            cost = (len(batch) + 1) * (length + options.max_new_tokens)
            if batch and (len(batch) >= self.max_batch_size or cost > self.max_batch_tokens):
                break
            batch.append(request)
            longest = length
        chosen = set(map(id, batch))
        self._backlog = [r for r in self._backlog if id(r) not in chosen]
        return batch

    def _execute(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        try:
            results = generate_padded(
                self.model,
                self.tokenizer,
                [r.input_ids or [] for r in batch],
                batch[0].options,
                eos_token_ids=self.eos_token_ids,
                pad_token_id=self.pad_token_id,
                prefix_cache=self.prefix_cache,
                cancelled=lambda: self._closed,
            )
        except Exception as error:
            for request in batch:
                request.error = error
        else:
            for request, result in zip(batch, results, strict=True):
                request.result = result
        stats = self.stats
        stats.generate_s += time.perf_counter() - started
        stats.batches += 1
        stats.max_batch = max(stats.max_batch, len(batch))
        for request in batch:
            if request.result is None:
                stats.failed += 1
            else:
                stats.requests += 1
                stats.prompt_tokens += request.result.prompt_tokens
                stats.generated_tokens += len(request.result.token_ids)
        _wake(batch)

    def _fail_all(self, error: BaseException) -> None:
        self._dead = True  # before draining: a request put after the drain sees it (``generate``)
        waiting = self._backlog
        self._backlog = []
        with contextlib.suppress(queue.Empty):
            while True:
                request = self._queue.get_nowait()
                if request is not None:
                    waiting.append(request)
        for request in waiting:
            request.error = error
        _wake(waiting)


_engines: weakref.WeakSet[PaddedBatchEngine] = weakref.WeakSet()


@atexit.register
def _stop_engines_at_exit() -> None:
    """A generation thread still inside torch while the interpreter tears down aborts the process
    ("terminate called without an active exception"): stop them all (each ends at its next token)."""
    engines = list(_engines)
    for engine in engines:
        engine.close()
    for engine in engines:
        engine.join(timeout=60)


def _wake(requests: list[_Request]) -> None:
    """Set each request's event on its own event loop, without blocking this thread."""
    by_loop = itertools.groupby(sorted(requests, key=lambda r: id(r.token)), key=lambda r: id(r.token))
    for _, group in by_loop:
        members = list(group)
        token = members[0].token

        def wake(members: list[_Request] = members) -> None:
            for request in members:
                request.event.set()

        # A loop that has finished has no one left to wake.
        with contextlib.suppress(RuntimeError, anyio.RunFinishedError):
            token.backend_class.run_sync_soon(wake, (), token.native_token)


# --- one padded batch ----------------------------------------------------------------------------
def generate_padded(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    options: GenerationOptions,
    *,
    eos_token_ids: frozenset[int] | Sequence[int] = (),
    pad_token_id: int = 0,
    prefix_cache: PrefixCache | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[GenerationResult]:
    """Generate for several prompts at once: left padding, attention mask, raw-logit logprobs.

    With a ``prefix_cache``, a prefix that all prompts share (a task's system prompt) is computed once,
    kept, and reused by later batches; each row then reads ``[prefix][padding][its own suffix]`` and
    only the suffixes are computed. Position ids come from the attention mask, so every row sees the
    same positions as it would alone.
    """
    if not prompts or min(len(p) for p in prompts) == 0:
        raise ValueError("empty prompt")
    eos = frozenset(eos_token_ids)
    device = model.device
    shared = prefix_cache.lookup(model, prompts) if prefix_cache is not None else None
    start = 0 if shared is None else len(shared[0])
    width = max(len(p) for p in prompts) - start
    rows = len(prompts)
    input_ids = torch.full((rows, start + width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((rows, start + width), dtype=torch.long)
    if shared is not None:
        input_ids[:, :start] = torch.tensor(shared[0], dtype=torch.long)
        attention_mask[:, :start] = 1
    for row, ids in enumerate(prompts):
        suffix = ids[start:]
        input_ids[row, start + width - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
        attention_mask[row, start + width - len(suffix) :] = 1
    width += start
    recorder = _RawLogprobs()
    processors: list[Any] = [recorder, *options.logits_processors]
    processors += _sampling_warpers(options)
    stopping = StoppingCriteriaList()
    if options.stop:
        stopping.append(_StopStrings(tokenizer, options.stop, width))
    if cancelled is not None:
        stopping.append(_StopWhen(cancelled))
    extra: dict[str, Any] = {"do_sample": False}
    if options.temperature > 0:
        # Temperature, top-p and top-k are ours (after the recorder); switch transformers' own off.
        extra = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
    extra["past_key_values"] = _new_cache(
        model, rows, width + options.max_new_tokens, None if shared is None else shared[1]
    )
    with torch.inference_mode():
        sequences = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=options.max_new_tokens,
            **extra,
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
    return results


@dataclass(slots=True)
class _PrefixStates:
    """Key/value states of one prefix, batch size 1, one (keys, values) pair per layer."""

    layers: list[tuple[Any, Any]]


def _new_cache(model: Any, rows: int, length: int, prefix: _PrefixStates | None) -> Any:
    """A key/value cache for one batch, holding ``prefix`` (copied into every row) if given.

    Preallocated (``StaticCache``: every new token is written in place) when the model's layers allow
    it; transformers' default growing cache concatenates the whole batch's keys and values at every
    step, which for SmolLM2 at batch 32 on a CPU was half of all the time spent.
    """
    cache: Any = StaticCache(config=model.config, max_cache_len=length)
    if any(type(layer) is not StaticLayer for layer in cache.layers):  # sliding windows, recurrent state
        cache = DynamicCache(config=model.config)
    if prefix is not None:
        for index, (keys, values) in enumerate(prefix.layers):
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), index)
    return cache


class PrefixCache:
    """The key/value states of prompt prefixes shared across requests, computed once and kept.

    Multi-turn episodes of one task all start with the same system prompt (hundreds of tokens for
    maze, over a thousand for wordle), and each turn's prompt starts with the previous turn's; on a CPU
    recomputing them dominates. A prefix is stored once two requests have shown it (two prompts of
    one batch, or a prompt and one of the ``recent`` ones) and it has at least ``min_tokens`` tokens;
    any later batch whose prompts all start with a stored prefix reuses it. At most ``max_entries``
    prefixes are kept (least recently used goes). Only for models whose cache is a plain growing
    key/value cache (no sliding windows or recurrent state).
    """

    def __init__(self, max_entries: int = 4, min_tokens: int = 32, recent: int = 8) -> None:
        self.max_entries = max_entries
        self.min_tokens = min_tokens
        self.entries: OrderedDict[tuple[int, ...], _PrefixStates] = OrderedDict()
        self.recent: deque[list[int]] = deque(maxlen=recent)
        self.supported: bool | None = None
        self.hits = 0
        self.tokens_saved = 0

    def lookup(self, model: Any, prompts: list[list[int]]) -> tuple[tuple[int, ...], _PrefixStates] | None:
        if self.supported is False:
            return None
        first = prompts[0]
        agreed = _common_prefix_length(prompts)  # at least one token of every prompt stays to compute
        common = agreed
        if len(prompts) == 1:  # shared only as far as a recent request shares it
            common = min(common, max((_shared_length(first, r) for r in self.recent), default=0))
        self.recent.append(first)
        best: tuple[int, ...] | None = None
        for key in self.entries:
            usable = len(key) <= agreed and tuple(first[: len(key)]) == key
            if usable and (best is None or len(key) > len(best)):
                best = key
        if (best is None or 2 * len(best) < common) and common >= self.min_tokens:
            states = self._compute(model, first[:common])
            if states is not None:
                best = tuple(first[:common])
                self.entries[best] = states
                while len(self.entries) > self.max_entries:
                    self.entries.popitem(last=False)
        if best is None:
            return None
        self.entries.move_to_end(best)
        self.hits += 1
        self.tokens_saved += len(best) * len(prompts)
        return best, self.entries[best]

    def _compute(self, model: Any, prefix: list[int]) -> _PrefixStates | None:
        with torch.inference_mode():
            cache = model(
                input_ids=torch.tensor([prefix], dtype=torch.long, device=model.device), use_cache=True
            ).past_key_values
        layers = getattr(cache, "layers", None)
        if (
            not isinstance(cache, DynamicCache)
            or not layers
            or any(type(x) is not DynamicLayer for x in layers)
        ):
            self.supported = False
            return None
        self.supported = True
        return _PrefixStates([(layer.keys, layer.values) for layer in layers])


def _shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token sequences."""
    limit = min(len(a), len(b))
    if list(a[:limit]) == list(b[:limit]):
        return limit
    low, high = 0, limit  # binary search on "the first n tokens agree" (monotone in n)
    while low < high:
        mid = (low + high + 1) // 2
        if list(a[:mid]) == list(b[:mid]):
            low = mid
        else:
            high = mid - 1
    return low


def _common_prefix_length(prompts: list[list[int]]) -> int:
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    length = 0
    while length < limit and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


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


def _sampling_warpers(options: GenerationOptions) -> list[Any]:
    if options.temperature <= 0:
        return []  # greedy: argmax of the (possibly value-guided) logits
    warpers: list[Any] = []
    if options.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(options.temperature))
    if options.top_k > 0:
        warpers.append(TopKLogitsWarper(options.top_k))
    if options.top_p < 1.0:
        warpers.append(TopPLogitsWarper(options.top_p))
    return warpers


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
