"""Value heads on a causal LM's last hidden states (the input of its ``lm_head``), saved beside its weights.

``ValueHeads(hidden_size, vocab_size, double_q, value, targets, mlp)`` holds up to five heads, each
linear or (``mlp=True``, the paper's shape) a 2-layer MLP whose inner width is the model's:

=============== ============================ ===================================================
``q1``          hidden -> vocab              token-level Q(s, a) for every next token a (ILQL, MC)
``q2``          hidden -> vocab (double_q)   a second Q; guidance and targets use min(Q1, Q2)
``v``           hidden -> 1 (value)          V(s) (ILQL's expectile head)
``target_q1/2`` frozen copies (targets)      moved toward q1/q2 by ``polyak_update(alpha)``
=============== ============================ ===================================================

Q heads start near zero (small random weights in the output layer, zero bias; each head its own draw
so the two Q heads differ), so ``logits + beta * Q`` starts as the plain LM and guidance grows with
training.

A checkpoint directory with heads holds two more files: ``value_heads.safetensors`` (every head's
tensors, no pickle) and ``value_heads.json`` (sizes, which heads, the decoding ``beta``, the algorithm,
the extraction, gamma and any extra fields). ``local/<dir>`` agents load them and decode with
``lmrl.finetune.guidance.QGuidance``; ``extraction`` says what is added to the logits:
``"q"`` -> ``beta * Q`` (MC returns; min(Q1, Q2) when there are two) and ``"advantage"`` ->
``beta * (min(Q1, Q2) - V)`` (ILQL). An extra ``guide_with="target"`` makes decoding use the target
Q heads instead of the online ones.
"""

from __future__ import annotations

import json
import math
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn

HEADS_WEIGHTS = "value_heads.safetensors"
HEADS_META = "value_heads.json"
FORMAT = 1
EXTRACTIONS = ("q", "advantage")
HEAD_NAMES = ("q1", "q2", "v", "target_q1", "target_q2")
INIT_STD = 1e-3  # Q(s, a) = w_a . h starts at ~1e-3 * |h|: negligible next to the logits


class ValueHeadsError(ValueError):
    """A value-heads file that cannot be read (missing, malformed, inconsistent with itself)."""


class HeadsMismatchError(ValueHeadsError):
    """A value-heads file whose hidden or vocabulary size does not fit the model it sits beside."""


def has_heads(directory: str | Path) -> bool:
    return (Path(directory) / HEADS_META).is_file()


class ValueHeads(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        vocab_size: int,
        double_q: bool = False,
        value: bool = False,
        targets: bool = False,
        mlp: bool = False,
    ) -> None:
        super().__init__()
        self.hidden_size = int(hidden_size)
        self.vocab_size = int(vocab_size)
        self.double_q = bool(double_q)
        self.value = bool(value)
        self.targets = bool(targets)
        self.mlp = bool(mlp)
        self.q1 = self._head(self.vocab_size)
        self.q2 = self._head(self.vocab_size) if double_q else None
        self.v = self._head(1) if value else None
        self.target_q1: nn.Module | None = None
        self.target_q2: nn.Module | None = None
        if targets:
            self.target_q1 = self._frozen_copy(self.q1)
            self.target_q2 = self._frozen_copy(self.q2) if self.q2 is not None else None

    @classmethod
    def for_model(cls, model: Any, shape: str | None = None, **kinds: bool) -> ValueHeads:
        """Heads sized for ``model``; ``shape`` "mlp" makes them MLPs (``None`` or "linear": linear
        layers, as heads files written before the option hold)."""
        config = model.config
        return cls(config.hidden_size, config.vocab_size, mlp=shape == "mlp", **kinds)

    def _head(self, out: int) -> nn.Module:
        layer = nn.Linear(self.hidden_size, out)
        nn.init.normal_(layer.weight, std=INIT_STD)
        nn.init.zeros_(layer.bias)
        if not self.mlp:
            return layer
        # The inner layer keeps torch's default init: features must differ from the start for the
        # near-zero output layer to learn from them.
        return nn.Sequential(nn.Linear(self.hidden_size, self.hidden_size), nn.ReLU(), layer)

    @staticmethod
    def _frozen_copy(head: nn.Module) -> nn.Module:
        copy = deepcopy(head)
        copy.requires_grad_(False)
        return copy

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def names(self) -> list[str]:
        """The heads present, in ``HEAD_NAMES`` order."""
        return [name for name in HEAD_NAMES if getattr(self, name) is not None]

    def forward(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """``hidden``: [..., hidden_size] -> {head: [..., vocab] (q heads) or [..., 1] (v)}."""
        out: dict[str, torch.Tensor] = {}
        for name in self.names:
            if name.startswith("target_"):
                with torch.no_grad():
                    out[name] = getattr(self, name)(hidden)
            else:
                out[name] = getattr(self, name)(hidden)
        return out

    @torch.no_grad()
    def polyak_update(self, alpha: float) -> None:
        """target <- alpha * online + (1 - alpha) * target, for each target head (the paper: 0.005)."""
        for online, target in ((self.q1, self.target_q1), (self.q2, self.target_q2)):
            if online is None or target is None:
                continue
            for p_online, p_target in zip(online.parameters(), target.parameters(), strict=True):
                p_target.lerp_(p_online.to(p_target.dtype), alpha)

    # --- files -----------------------------------------------------------------------------------
    def save(
        self,
        directory: str | Path,
        *,
        beta: float,
        algo: str,
        extraction: str,
        gamma: float,
        **extra: Any,
    ) -> Path:
        """Write ``value_heads.safetensors`` and ``value_heads.json`` into ``directory``; return it."""
        from safetensors.torch import save_file

        if extraction not in EXTRACTIONS:
            raise ValueError(f"extraction must be one of {EXTRACTIONS}, not {extraction!r}")
        if extraction == "advantage" and self.v is None:
            raise ValueError("extraction 'advantage' needs a value head (value=True)")
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, not {beta!r}")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {key: value.detach().contiguous().cpu() for key, value in self.state_dict().items()}
        save_file(tensors, str(out / HEADS_WEIGHTS), metadata={"format": str(FORMAT)})
        meta = {
            "format": FORMAT,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "double_q": self.double_q,
            "value": self.value,
            "targets": self.targets,
            "mlp": self.mlp,
            "heads": self.names,
            "beta": float(beta),
            "algo": str(algo),
            "extraction": extraction,
            "gamma": float(gamma),
            "extra": extra,
        }
        (out / HEADS_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(
        cls, directory: str | Path, device: Any = None, dtype: Any = None
    ) -> tuple[ValueHeads, dict[str, Any]]:
        """Read the heads saved in ``directory`` (in eval mode) and their metadata."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        where = Path(directory)
        meta = read_meta(where)
        heads = cls(
            meta["hidden_size"],
            meta["vocab_size"],
            meta["double_q"],
            meta["value"],
            meta["targets"],
            meta["mlp"],
        )
        try:
            tensors = load_file(str(where / HEADS_WEIGHTS))
        except (OSError, SafetensorError) as error:
            raise ValueHeadsError(f"{where / HEADS_WEIGHTS}: unreadable ({_one_line(error)})") from None
        expected = heads.state_dict()
        if set(tensors) != set(expected):
            missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
            raise ValueHeadsError(
                f"{where / HEADS_WEIGHTS} does not match {HEADS_META} "
                f"(missing {missing}, unexpected {unexpected})"
            )
        for key, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(expected[key].shape):
                raise ValueHeadsError(
                    f"{where / HEADS_WEIGHTS}: {key} has shape {list(tensor.shape)}, "
                    f"{HEADS_META} says {list(expected[key].shape)}"
                )
        heads.load_state_dict(tensors)
        heads.to(device=device, dtype=dtype)
        return heads.eval(), meta

    def check_fits(self, model: Any, where: str = "value heads") -> None:
        """Raise ``HeadsMismatchError`` unless these heads read ``model``'s lm_head input and cover
        its vocabulary."""
        hidden, vocab = lm_head_sizes(model)
        if hidden != self.hidden_size:
            raise HeadsMismatchError(
                f"{where}: hidden size {self.hidden_size} does not fit the model (hidden size {hidden})"
            )
        if vocab != self.vocab_size:
            raise HeadsMismatchError(
                f"{where}: vocabulary size {self.vocab_size} does not fit the model (vocabulary {vocab})"
            )


def lm_head_sizes(model: Any) -> tuple[int, int]:
    """(hidden, vocab) of the model's output layer: the input and output widths of ``lm_head``."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is None or weight.dim() != 2:
        raise HeadsMismatchError(f"{type(model).__name__} has no linear output layer to put value heads on")
    vocab, hidden = weight.shape
    return int(hidden), int(vocab)


def read_meta(directory: str | Path) -> dict[str, Any]:
    """``value_heads.json`` of ``directory``, checked (``ValueHeadsError`` when it is not usable)."""
    path = Path(directory) / HEADS_META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueHeadsError(f"{path}: unreadable ({_one_line(error)})") from None
    if not isinstance(meta, dict):
        raise ValueHeadsError(f"{path}: not a JSON object")
    problems = []
    for key in ("hidden_size", "vocab_size"):
        if not (isinstance(meta.get(key), int) and not isinstance(meta.get(key), bool) and meta[key] > 0):
            problems.append(f"{key} must be a positive integer")
    meta.setdefault("mlp", False)  # files written before MLP heads hold linear ones
    for key in ("double_q", "value", "targets", "mlp"):
        if not isinstance(meta.get(key), bool):
            problems.append(f"{key} must be true or false")
    beta = meta.get("beta")
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta) or beta < 0:
        problems.append("beta must be a number >= 0")
    if meta.get("extraction") not in EXTRACTIONS:
        problems.append(f"extraction must be one of {list(EXTRACTIONS)}")
    elif meta["extraction"] == "advantage" and meta.get("value") is not True:
        problems.append("extraction 'advantage' needs a value head")
    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        problems.append("extra must be an object")
    elif extra.get("guide_with", "q") not in ("q", "target"):
        problems.append("extra.guide_with must be 'q' or 'target'")
    elif extra.get("guide_with") == "target" and meta.get("targets") is not True:
        problems.append("extra.guide_with 'target' needs target heads")
    if problems:
        raise ValueHeadsError(f"{path}: " + "; ".join(problems))
    meta.setdefault("extra", {})
    meta.setdefault("algo", "")
    return meta


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
