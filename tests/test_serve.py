"""A checkpoint served by ``transformers serve`` (a real OpenAI-compatible server) on 127.0.0.1 is an
ordinary ``openai/<checkpoint dir>`` model for the litellm agent, given ``api_base``.

The same recipe reaches vLLM on a GPU cluster: ``vllm serve <dir>`` then ``hosted_vllm/<dir>`` (or
``openai/<dir>``) with ``--api-base http://host:8000/v1``.
"""

from __future__ import annotations

import importlib.util

import pytest
from serving import transformers_serve

from lmrl.agents import AgentOptions, make_agent
from lmrl.models.tiny import build_tiny_model
from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, Runner

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,  # ~15 s: the server takes 5-10 s to start
    pytest.mark.skipif(
        importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None,
        reason='needs transformers[serving] (pip install "transformers[serving]")',
    ),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """``transformers serve <tiny checkpoint>`` on a free port of 127.0.0.1; yields (dir, api_base)."""
    checkpoint = build_tiny_model(tmp_path_factory.mktemp("served") / "tiny")
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with transformers_serve([str(checkpoint)], log) as api_base:
        yield checkpoint, api_base


# text: a whole episode (101 turns of short prompts); chat: capped, since the server recomputes the
# whole growing conversation on every turn. Both transports of the API agent: litellm itself and the
# direct OpenAI-compatible client that ``auto`` picks for openai/ + api_base.
@pytest.mark.parametrize(
    ("style", "episodes", "max_turns", "transport"),
    [("text", 1, None, "litellm"), ("chat", 2, 15, "litellm"), ("chat", 2, 15, "auto")],
)
async def test_served_checkpoint_plays_maze_through_litellm(
    served, style, episodes, max_turns, transport, tmp_path
):
    checkpoint, api_base = served
    # transformers serve names the model by the path it was started with; requests use that name.
    model = f"openai/{checkpoint}"
    config = RunConfig(
        out=tmp_path / "run",
        tasks=["maze-fo"],
        models=[model],
        episodes=episodes,
        concurrency=2,
        style=style,
        max_turns=max_turns,
        agent_options=AgentOptions(
            api_base=api_base,
            max_tokens=8,
            max_retries=1,
            request_timeout=60,
            extra={"transport": transport},
        ),
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    played = load_episodes(tmp_path / "run")
    assert len(played) == episodes
    for episode in played:
        assert episode.length == (max_turns or 101) or episode.success  # the tiny model is random
        assert all(t.tokens_in > 0 and 0 < t.tokens_out <= 8 for t in episode.turns)


async def test_make_agent_reaches_the_server(served):
    checkpoint, api_base = served
    agent = make_agent(f"openai/{checkpoint}", AgentOptions(api_base=api_base, max_tokens=4))
    await agent.preflight()  # reachability check
    assert agent.describe()["api_base"] == api_base
    await agent.aclose()
