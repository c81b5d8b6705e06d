"""The litellm agent over real HTTP against the scripted OpenAI-compatible server."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from lmrl.agents import AgentConfigError, AgentOptions, make_agent
from lmrl.agents.litellm_agent import AgentCallError, LiteLLMAgent
from lmrl.rollout import rollout
from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, Runner
from lmrl.task import Prompt, Segment
from lmrl.tasks import make_task
from lmrl.tasks.maze import DISTANCE, START_CELLS

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["litellm", "direct"])
def transport(request) -> str:
    """Every agent test runs through litellm and through the lean direct HTTP client."""
    return request.param


_open_agents: list[LiteLLMAgent] = []


@pytest.fixture(autouse=True)
async def close_agents():
    """Agents used outside a Runner are closed here, as the Runner would (no dangling HTTP sessions)."""
    yield
    while _open_agents:
        await _open_agents.pop().aclose()


def agent_for(server, brain: str, transport: str, **options) -> LiteLLMAgent:
    # A unique tag per test keeps the server's per-model failure counters separate.
    model = f"openai/{brain}@id={uuid.uuid4().hex[:8]}"
    extra = {"retry_base_delay": 0.01, "transport": transport}
    fields = {"api_base": server.api_base, "max_retries": 3, "extra": extra, **options}
    agent = make_agent(model, AgentOptions(**fields))
    assert isinstance(agent, LiteLLMAgent) and agent.transport == transport
    _open_agents.append(agent)
    return agent


def requests_for(server, agent) -> list[dict]:
    name = agent.model.removeprefix("openai/")
    return [r for r in server.requests() if r["model"] == name]


def one_prompt() -> Prompt:
    task = make_task("maze-fo")
    return Prompt(task, [Segment("observation", task.reset(0, 0))], "chat", random.Random(0))


async def test_full_multi_turn_episode_over_http(fake_server, transport):
    agent = agent_for(fake_server, "maze", transport)
    await agent.preflight()
    episode = await rollout("maze-fo", agent, seed=11, index=3)
    assert episode.error is None and episode.success
    assert episode.return_ == -(DISTANCE[START_CELLS[3]] - 1)
    assert all(t.tokens_in > 0 and t.tokens_out > 0 and t.latency_s > 0 for t in episode.turns)
    seen = requests_for(fake_server, agent)
    assert len(seen) == episode.length
    # chat history grows by an assistant and a user message every turn
    assert [r["messages"] for r in seen] == [2 + 2 * i for i in range(episode.length)]


async def test_200_concurrent_episodes_are_in_flight_together(fake_server, tmp_path):
    # The delay outlasts starting 200 calls on a loaded 2-core machine (0.3 s let one call through late).
    model = f"openai/maze@delay=1.0@id={uuid.uuid4().hex[:8]}"
    config = RunConfig(
        out=tmp_path / "run",
        tasks=["maze-fo"],
        models=[model],
        episodes=200,
        concurrency=200,
        max_turns=2,
        agent_options=AgentOptions(api_base=fake_server.api_base),
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    episodes = load_episodes(tmp_path / "run")
    assert len({e.key for e in episodes}) == 200
    seen = [r for r in fake_server.requests() if r["model"] == model.removeprefix("openai/")]
    first_second_turn = min(r["t"] for r in seen if r["messages"] == 4)
    # every episode's first call reached the server before any episode made its second call
    assert sum(r["t"] < first_second_turn for r in seen if r["messages"] == 2) == 200


async def test_retries_after_429_honouring_retry_after(fake_server, transport):
    agent = agent_for(fake_server, "say@fail=429x1@retry=1", transport)
    started = time.perf_counter()
    completion = await agent.act(one_prompt())
    elapsed = time.perf_counter() - started
    assert completion.text == "move up"
    assert len(requests_for(fake_server, agent)) == 2
    assert elapsed >= 0.95  # waited the server's Retry-After, not our 10 ms backoff


async def test_retries_after_500(fake_server, transport):
    agent = agent_for(fake_server, "say@fail=500x2", transport)
    completion = await agent.act(one_prompt())
    assert completion.text == "move up"
    assert len(requests_for(fake_server, agent)) == 3


async def test_gives_up_after_max_retries_with_one_line_error(fake_server, transport):
    agent = agent_for(fake_server, "say@fail=503x10", transport, max_retries=2)
    with pytest.raises(AgentCallError) as raised:
        await agent.act(one_prompt())
    assert "\n" not in str(raised.value)
    assert len(requests_for(fake_server, agent)) == 3


async def test_auth_errors_are_not_retried(fake_server, transport):
    agent = agent_for(fake_server, "say@fail=401x10", transport)
    with pytest.raises(AgentCallError, match="(?i)401|auth"):
        await agent.act(one_prompt())
    assert len(requests_for(fake_server, agent)) == 1


async def test_timeout_is_retried_then_reported(fake_server, transport):
    agent = agent_for(fake_server, "say@delay=5", transport, request_timeout=0.3, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(AgentCallError, match="(?i)time"):
        await agent.act(one_prompt())
    assert time.perf_counter() - started < 3
    assert len(requests_for(fake_server, agent)) == 2


async def test_malformed_body_is_retried(fake_server, transport):
    agent = agent_for(fake_server, "say@malformed=1", transport)
    completion = await agent.act(one_prompt())
    assert completion.text == "move up"
    assert len(requests_for(fake_server, agent)) == 2


async def test_a_failing_model_errors_its_episodes_and_the_run_goes_on(fake_server, tmp_path):
    broken = f"openai/say@fail=500x1000@id={uuid.uuid4().hex[:8]}"
    good = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    options = AgentOptions(api_base=fake_server.api_base, max_retries=1, extra={"retry_base_delay": 0.01})
    config = RunConfig(
        out=tmp_path / "run", tasks=["maze-fo"], models=[broken, good], episodes=5, agent_options=options
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 5
    episodes = load_episodes(tmp_path / "run")
    assert sorted(e.error is None for e in episodes) == [False] * 5 + [True] * 5
    assert all("500" in e.error or "Internal" in e.error for e in episodes if e.error)
    assert all(e.success for e in episodes if e.error is None)


async def test_text_style_uses_the_completions_endpoint_and_stops_at_newline(fake_server, transport):
    model = f"openai/say@id={uuid.uuid4().hex[:8]}"
    options = AgentOptions(api_base=fake_server.api_base, extra={"transport": transport})
    agent = make_agent(model, options, style="text")
    _open_agents.append(agent)
    task = make_task("maze-fo")
    prompt = Prompt(task, [Segment("observation", task.reset(0, 0))], "text", random.Random(0))
    completion = await agent.act(prompt)
    assert completion.text == "move up"
    (request,) = [r for r in fake_server.requests() if r["model"] == model.removeprefix("openai/")]
    assert request["first_user"] == prompt.text and "Your current position" in prompt.text


async def test_cost_comes_from_litellms_price_map(fake_server, transport):
    import litellm

    options = AgentOptions(api_base=fake_server.api_base, extra={"transport": transport})
    agent = make_agent("openai/gpt-4o-mini", options)
    _open_agents.append(agent)
    completion = await agent.act(one_prompt())
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="gpt-4o-mini", prompt_tokens=completion.tokens_in, completion_tokens=completion.tokens_out
    )
    assert completion.cost_usd == pytest.approx(prompt_cost + completion_cost) and completion.cost_usd > 0


async def test_transport_choice():
    base = "http://127.0.0.1:9/v1"
    assert make_agent("openai/x", AgentOptions(api_base=base)).transport == "direct"
    assert make_agent("hosted_vllm/x", AgentOptions(api_base=base)).transport == "direct"
    assert make_agent("openai/gpt-4o-mini", AgentOptions()).transport == "litellm"
    forced = AgentOptions(api_base=base, extra={"transport": "litellm"})
    assert make_agent("openai/x", forced).transport == "litellm"
    with pytest.raises(AgentConfigError, match="direct transport needs"):
        make_agent("anthropic/claude-3-5-haiku-latest", AgentOptions(extra={"transport": "direct"}))
