"""``transformers serve`` for tests that need a real OpenAI-compatible server in front of a real
checkpoint (skipped where the command is not installed)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from lmrl.finetune.rollout_server import transformers_serve as _serve


def transformers_serve(args: list[str], log: Path):
    if not (Path(sys.executable).parent / "transformers").exists() and shutil.which("transformers") is None:
        pytest.skip("the transformers command is not installed")
    return _serve(args, log)
