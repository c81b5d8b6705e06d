"""The network a run starts from: a small model trained from scratch with a tokenizer learnt on the
task's own text (``tiny``, ``small``: GPT-2-style, the CPU default; ``tiny-rope``: Llama-style, rotary
positions), or any local checkpoint (``local/smollm2``, a ``save_pretrained`` directory)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

# name -> (architecture, layers, hidden, heads, vocabulary) of a from-scratch model
SIZES: dict[str, tuple[str, int, int, int, int]] = {
    "tiny": ("gpt2", 2, 128, 4, 1024),
    "small": ("gpt2", 4, 256, 8, 2048),
    # Rotary positions and no dropout: on Wordle it learns to read the feedback (a letter's colour is
    # six tokens after it, at every position) where the GPT-2 models learnt only the vocabulary.
    "tiny-rope": ("llama", 4, 128, 4, 1024),
    # Twice as wide, twice the heads (more letters looked up at once): 2.3x tiny-rope's step time.
    "small-rope": ("llama", 4, 256, 8, 1024),
}


class ModelError(ValueError):
    """The base model cannot be built or loaded: one line."""


def prepare_base(base: str, task: str, directory: Path, seed: int) -> Path:
    """The checkpoint directory a run starts from: built into ``directory`` for ``tiny``/``small``
    (tokenizer trained on scripted episodes of ``task``), else the named checkpoint itself."""
    if base in SIZES:
        from lmrl.models.tiny import build_tiny_model

        arch, layers, hidden, heads, vocab = SIZES[base]
        if not (directory / "config.json").exists():
            build_tiny_model(
                directory,
                arch=arch,
                vocab_size=vocab,
                layers=layers,
                hidden=hidden,
                heads=heads,
                seed=seed,
                init_std=0.02,  # a trainable start (the test fixtures' 0.2 makes argmaxes stable instead)
                tasks=(task,),
            )
        return directory
    from lmrl.agents.local_models import checkpoint_path

    name = base.removeprefix("local/")
    if name == "smollm2":
        from lmrl.models import smollm2

        try:
            return smollm2.ensure_checkpoint()
        except smollm2.ModelUnavailable as error:
            raise ModelError(str(error)) from None
    from lmrl.agents import AgentConfigError

    try:
        path = checkpoint_path(name)
    except AgentConfigError:
        raise ModelError(
            f"--base {base}: not a checkpoint directory ({', '.join(SIZES)}, local/smollm2 or a path)"
        ) from None
    if not (path / "config.json").exists():
        raise ModelError(f"--base {base}: {path} is not a checkpoint directory (no config.json)")
    return path


def load(path: Path, lora: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 on the CPU (``accelerate`` moves them); with ``lora``, the model
    is wrapped in peft LoRA adapters (``{"r": 16, "alpha": 32, "dropout": 0.0}``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype="float32")
    except Exception as error:
        raise ModelError(f"cannot load {path}: {type(error).__name__}: {error}".splitlines()[0]) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if lora:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise ModelError("--lora needs peft: pip install 'lmrl[lora]'") from None
        config = LoraConfig(
            r=int(lora.get("r", 16)),
            lora_alpha=int(lora.get("alpha", 2 * int(lora.get("r", 16)))),
            lora_dropout=float(lora.get("dropout", 0.0)),
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return model, tokenizer


def save(model: Any, tokenizer: Any, directory: Path) -> None:
    """A directory the harness plays as ``local/<directory>`` (LoRA adapters merged in)."""
    directory.mkdir(parents=True, exist_ok=True)
    # Merge a copy: the run goes on training the adapters after a checkpoint.
    plain = copy.deepcopy(model).merge_and_unload() if hasattr(model, "merge_and_unload") else model
    plain.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
