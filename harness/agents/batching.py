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

Reused prefixes (``PrefixStore``, in ``prefix_store.py``): the key/value states of every answered
prompt and its reply are kept (within a memory budget), so a later prompt that starts with the same
tokens (the episode's next turn; another episode's system prompt) computes only its new tokens. On a
CPU, prompt processing is most of the work of a multi-turn turn and batching does not make it cheaper.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import torch

from lmrl.agents.padded_generation import (
    EngineClosed,
    GenerationOptions,
    GenerationResult,
    generate_padded,
)
from lmrl.agents.prefix_store import PrefixStore

Encoder = Callable[[], list[int]]


@dataclass(eq=False, slots=True)
class _Request:
    options: GenerationOptions
    encode: Encoder
    event: anyio.Event
    token: anyio.lowlevel.EventLoopToken
    input_ids: list[int] | None = None
    seed: int | None = None  # the request's own sampling stream (None: torch's global generator)
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
    last_batch_end: float = 0.0  # time.perf_counter() when the latest batch finished

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
        prefix_budget_bytes: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.window_s = max(0.0, float(window_s))
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        self.pad_token_id = int(pad_token_id)
        self.stats = EngineStats()
        self.prefix_store = (
            PrefixStore(default_prefix_budget(model) if prefix_budget_bytes is None else prefix_budget_bytes)
            if share_prefixes
            else None
        )
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
            "share_prefixes": self.prefix_store is not None,
            **({"prefix_store": self.prefix_store.describe()} if self.prefix_store is not None else {}),
        }

    # --- the caller's side (event loop) ----------------------------------------------------------
    async def generate(
        self, prompt: list[int] | Encoder, options: GenerationOptions, seed: int | None = None
    ) -> GenerationResult:
        """Queue one prompt (token ids, or a function the generation thread calls to get them). With a
        ``seed``, its samples come from a stream of its own, whatever it is batched with."""
        if self._closed:
            raise EngineClosed("the local model was released")
        encode = prompt if callable(prompt) else (lambda ids=list(prompt): ids)
        request = _Request(options, encode, anyio.Event(), anyio.lowlevel.current_token(), seed=seed)
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
                prefix_store=self.prefix_store,
                cancelled=lambda: self._closed,
                seeds=[r.seed for r in batch],
            )
        except Exception as error:
            for request in batch:
                request.error = error
        else:
            for request, result in zip(batch, results, strict=True):
                request.result = result
        stats = self.stats
        stats.last_batch_end = time.perf_counter()
        stats.generate_s += stats.last_batch_end - started
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


def default_prefix_budget(model: Any) -> int:
    """A quarter of the memory free now on the model's device (at most 8 GiB on a CPU)."""
    device = getattr(model, "device", torch.device("cpu"))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    available = 2 * 2**30
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    return min(available // 4, 8 * 2**30)


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
