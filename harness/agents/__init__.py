"""Agents fill roles. A spec string names one:

- ``scripted/<policy>``  a task's built-in policy (``random``, ``optimal``, ``behavior``)
- ``local/<path>``       an in-process transformers checkpoint (``local/smollm2``: the embedded model)
- anything else          a litellm model name (``openai/gpt-4o-mini``, ``anthropic/...``, ``hosted_vllm/...``)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmrl.agents.base import Agent, AgentConfigError, AgentOptions, Completion, options_from_settings
from lmrl.agents.scripted import ScriptedAgent

__all__ = ["Agent", "AgentConfigError", "AgentOptions", "Completion", "ScriptedAgent", "make_agent"]


def make_agent(
    spec: str, options: AgentOptions | Mapping[str, Any] | None = None, style: str = "chat"
) -> Agent:
    """The agent a spec names, with ``options`` (an ``AgentOptions``, or a dict of the keys
    ``--role-option`` takes: ``{"temperature": 0, "api_base": ..., "reasoning_effort": "low"}``)."""
    if isinstance(options, Mapping):
        from lmrl.agents.local_settings import LocalSettings

        options = options_from_settings(dict(options), LocalSettings.KEYS)
    options = options or AgentOptions()
    spec = spec.strip()
    if not spec:
        raise AgentConfigError("empty model spec")
    kind, _, rest = spec.partition("/")
    if kind == "scripted":
        return ScriptedAgent(rest)
    if kind == "local":
        from lmrl.agents.local import LocalAgent  # imports torch/transformers: only when asked for

        return LocalAgent(spec, options, style=style)
    from lmrl.agents.litellm_agent import LiteLLMAgent

    return LiteLLMAgent(spec, options, style=style)
