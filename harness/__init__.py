"""lmrl's evaluation harness: tasks, agents, judges, the concurrent runner and the run directory."""

import os

# Before anything imports litellm: use its bundled price map (no fetch at import) and never reach a hub.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
