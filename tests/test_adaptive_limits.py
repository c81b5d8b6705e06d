"""The adaptive concurrency limit per endpoint: AIMD arithmetic, and over real HTTP against the fake
server's rate limiter (``cap=K``: a request arriving while K are in flight gets 429)."""

from __future__ import annotations

import gc
import random
import time
import uuid

import anyio
import pytest

from lmrl.agents import AgentOptions, Completion, make_agent
from lmrl.agents.endpoint_limits import AIMD, EndpointLimiter, endpoint_limits
from lmrl.agents.litellm_agent import LiteLLMAgent
from lmrl.judges import make_judge
from lmrl.rundir import read_manifest
from lmrl.runner import RunConfig, Runner
from lmrl.task import Prompt, Segment
from lmrl.tasks import make_task


@pytest.fixture(autouse=True)
def _no_agents_left_from_earlier_tests():
    """A limiter lives as long as an agent on its endpoint: agents of earlier tests that only a
    reference cycle keeps alive would otherwise join this test's endpoint with their own settings."""
    gc.collect()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- the arithmetic, with a fake clock -------------------------------------------------------------


def test_grows_by_one_after_a_window_of_limited_successes_up_to_the_ceiling():
    aimd = AIMD(start=4, ceiling=6, clock=FakeClock())
    for _ in range(3):
        assert not aimd.succeeded(limited=True)
    assert aimd.succeeded(limited=True) and aimd.limit == 5  # 4 successes at limit 4
    for _ in range(100):
        aimd.succeeded(limited=False)  # calls that did not fill the limit say nothing about more
    assert aimd.limit == 5
    for _ in range(5 + 6 + 50):
        aimd.succeeded(limited=True)
    assert aimd.limit == 6  # the ceiling
    # a run of growth is one history entry, at its end
    assert [entry[1:] for entry in aimd.history] == [[4, "start"], [6, "grow"]]


def test_halves_once_per_burst_of_429s_with_a_floor_of_one():
    clock = FakeClock()
    aimd = AIMD(start=16, ceiling=64, clock=clock)
    sent_in = aimd.round
    clock.now += 1.5
    for _ in range(10):  # ten calls sent before the decrease all come back 429: one halving
        aimd.throttled(sent_in, retry_after=None)
    assert aimd.limit == 8 and aimd.rate_limited == 10
    aimd.throttled(aimd.round, None)  # a call sent after it: the limit is still too high
    aimd.throttled(aimd.round, None)
    aimd.throttled(aimd.round, None)
    assert aimd.limit == 1
    aimd.throttled(aimd.round, None)
    assert aimd.limit == 1
    assert aimd.history[:3] == [[0.0, 16, "start"], [1.5, 8, "429"], [1.5, 4, "429"]]
    assert aimd.history[-1][1:] == [1, "429"]  # 429s at the floor: one entry


def test_growth_restarts_its_window_after_a_decrease():
    aimd = AIMD(start=4, ceiling=64, clock=FakeClock())
    for _ in range(3):
        aimd.succeeded(limited=True)
    aimd.throttled(aimd.round, None)
    assert aimd.limit == 2
    assert not aimd.succeeded(limited=True)  # 1 of the new window of 2, not the 4th of the old one
    assert aimd.succeeded(limited=True) and aimd.limit == 3


def test_retry_after_pauses_the_endpoint_and_the_pauses_add_up_without_overlap():
    clock = FakeClock()
    aimd = AIMD(start=8, ceiling=32, clock=clock)
    aimd.throttled(aimd.round, retry_after=2.0)
    assert aimd.pause_left() == pytest.approx(2.0)
    clock.now += 1.0
    aimd.throttled(0, retry_after=2.0)  # overlaps the first pause by 1 s
    assert aimd.pause_left() == pytest.approx(2.0) and aimd.paused_s == pytest.approx(3.0)
    clock.now += 5.0
    assert aimd.pause_left() < 0


def test_a_fixed_limit_never_moves_but_still_honours_retry_after():
    aimd = AIMD(start=8, ceiling=32, adaptive=False, clock=FakeClock())
    for _ in range(100):
        aimd.succeeded(limited=True)
    aimd.throttled(aimd.round, retry_after=1.0)
    assert aimd.limit == 8 and aimd.history == [[0.0, 8, "start"]]
    assert aimd.rate_limited == 1 and aimd.pause_left() == pytest.approx(1.0)


@pytest.mark.anyio
async def test_the_limiter_bounds_calls_in_flight_and_serves_them_in_order():
    limiter = EndpointLimiter("test:fifo", start=2, ceiling=2)
    order: list[int] = []
    active = peak = 0

    async def call(i: int) -> None:
        nonlocal active, peak
        async with limiter.slot():
            active += 1
            peak = max(peak, active)
            order.append(i)
            await anyio.sleep(0.01)
            active -= 1

    async with anyio.create_task_group() as group:
        for i in range(8):
            group.start_soon(call, i)
    assert peak == 2 and order == list(range(8)) and limiter.in_flight == 0


def test_a_new_event_loop_run_starts_the_limit_afresh():
    limiter = EndpointLimiter("test:restart", start=8, ceiling=32)

    async def refused() -> None:
        async with limiter.slot() as slot:
            slot.rate_limited(None)

    anyio.run(refused)
    assert limiter.limit == 4
    anyio.run(refused)  # another run: learned again from 8, not from the last run's 4
    assert limiter.limit == 4 and limiter.aimd.rate_limited == 1


# --- over real HTTP ---------------------------------------------------------------------------------


def agent_for(server, brain: str, **options) -> LiteLLMAgent:
    model = f"openai/{brain}@id={uuid.uuid4().hex[:8]}"  # the server's counters are per model name
    fields = {"api_base": server.api_base, "max_retries": 30, "extra": {"retry_base_delay": 0.01}}
    agent = make_agent(model, AgentOptions(**(fields | options)))
    assert isinstance(agent, LiteLLMAgent)
    return agent


def one_prompt() -> Prompt:
    task = make_task("maze-fo")
    return Prompt(task, [Segment("observation", task.reset(0, 0))], "chat", random.Random(0))


def statuses(server, agent) -> list[int]:
    name = agent.model.removeprefix("openai/")
    return [r.get("status", 200) for r in server.requests() if r["model"] == name]


@pytest.mark.anyio
async def test_the_limit_falls_under_sustained_429s_and_recovers_after(fake_server):
    k, storm = 3, 240  # the server allows 3 calls in flight for its first 240 requests
    agent = agent_for(fake_server, f"say@delay=0.02@cap={k}x{storm}", concurrency=8)
    limiter, prompt = agent.limiter, one_prompt()
    sent = 0  # requests made, 429s included: the server's own count
    send = agent._call_direct

    async def counted(prompt: Prompt) -> Completion:
        nonlocal sent
        sent += 1
        return await send(prompt)

    async def caller() -> None:
        while sent < storm:
            await agent.act(prompt)

    agent._call_direct = counted  # type: ignore[method-assign]
    async with anyio.create_task_group() as group:  # 16 callers: always more demand than the limit
        for _ in range(16):
            group.start_soon(caller)
    del agent._call_direct  # no cycle through the agent: its limiter goes with it (weakly held)
    seen = statuses(fake_server, agent)
    storm_429s = seen[:storm].count(429)
    history = limiter.describe()["history"]
    last_429 = max(i for i, entry in enumerate(history) if entry[2] == "429")
    assert history[1][1:] == [4, "429"] and min(entry[1] for entry in history) <= k
    # the sawtooth of AIMD under a cap of k, for the whole storm: around k, never back near the start
    # (8). One step above k+1 is allowed: on a loaded CPU the server can see fewer of the client's
    # calls at once than the client has in flight (one ends while the next is still in the socket's
    # backlog), so a call at k+1 may pass and the limit grow once more before a 429 reaches it.
    storm_limits = [entry[1] for entry in history[1 : last_429 + 1]]
    assert max(storm_limits) <= k + 2, history
    # once down, few calls are turned away: far fewer than the 5 of 8 a fixed limit of 8 would lose
    assert seen[storm // 2 : storm].count(429) < 0.3 * (storm // 2), storm_429s

    # the storm is over: the limit grows back past its start, with no 429 on the way
    deadline = time.monotonic() + 20
    while limiter.limit < 10 and time.monotonic() < deadline:
        async with anyio.create_task_group() as group:
            for _ in range(16):
                group.start_soon(agent.act, prompt)
    assert limiter.limit >= 10
    assert limiter.aimd.rate_limited == storm_429s  # the limiter saw every 429 the server sent
    history = limiter.describe()["history"]
    assert history[0][1:] == [8, "start"] and history[-1][1:] == [limiter.limit, "grow"]
    assert any(entry[2] == "429" for entry in history)
    await agent.aclose()


@pytest.mark.anyio
async def test_5xx_does_not_shrink_the_limit(fake_server):
    agent = agent_for(fake_server, "say@delay=0.01@fail=503x40", concurrency=4)
    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(agent.act, one_prompt())
    assert len(statuses(fake_server, agent)) == 8 + 40  # every 503 was retried
    assert agent.limiter.limit >= 4 and agent.limiter.aimd.rate_limited == 0
    assert agent.limiter.aimd.history[0][1:] == [4, "start"]
    assert all(entry[2] != "429" for entry in agent.limiter.aimd.history)
    await agent.aclose()


@pytest.mark.anyio
async def test_retry_after_pauses_every_call_on_the_endpoint(fake_server):
    throttled = agent_for(fake_server, "say@fail=429x1@retry=1")
    other = agent_for(fake_server, "say")  # another model on the same endpoint
    assert other.limiter is throttled.limiter
    prompt = one_prompt()
    async with anyio.create_task_group() as group:
        group.start_soon(throttled.act, prompt)
        with anyio.fail_after(5):
            while throttled.limiter.aimd.pause_left() <= 0:  # the 429 with Retry-After: 1 came back
                await anyio.sleep(0.005)
        started = time.perf_counter()
        await other.act(prompt)
        waited = time.perf_counter() - started
    assert waited >= 0.8  # held back by the other model's Retry-After, though it was never refused
    first_429 = next(r["t"] for r in fake_server.requests() if r["model"] == throttled.model[7:])
    (sent,) = [r["t"] for r in fake_server.requests() if r["model"] == other.model[7:]]
    assert sent - first_429 >= 0.95
    assert throttled.limiter.describe()["paused_s"] == pytest.approx(1.0, abs=0.05)
    await throttled.aclose()
    await other.aclose()


def test_agent_partner_and_judge_on_one_endpoint_share_one_limiter(fake_server, second_fake_server, tmp_path):
    spec = f"openai/say@id={uuid.uuid4().hex[:8]}"
    oracle = f"openai/say@text=yes@id={uuid.uuid4().hex[:8]}"
    config = RunConfig(
        out=tmp_path / "run",
        tasks=["twenty-questions"],
        models=[spec],
        roles={"oracle": oracle},
        role_options={"oracle": AgentOptions(api_base=fake_server.api_base)},  # concurrency 64
        agent_options=AgentOptions(api_base=fake_server.api_base, concurrency=8),
    )
    runner = Runner(config)
    agent, partner = runner.agents[spec], runner.partner_agents[("oracle", oracle)]
    judge = make_judge(f"agent-quality={spec}", AgentOptions(api_base=fake_server.api_base + "/"))
    elsewhere = make_agent(spec, AgentOptions(api_base=second_fake_server.api_base))
    assert agent.limiter is partner.limiter is judge.agent.limiter  # type: ignore[attr-defined]
    assert elsewhere.limiter is not agent.limiter  # type: ignore[attr-defined]
    # the smallest configured start, the largest ceiling (4 x the partner's default 64)
    assert agent.limiter.limit == 8 and agent.limiter.aimd.ceiling == 256  # type: ignore[attr-defined]
    limits = endpoint_limits([agent, partner, elsewhere])
    assert sorted(limits) == sorted(
        [f"openai:{fake_server.api_base}", f"openai:{second_fake_server.api_base}"]
    )


@pytest.mark.anyio
async def test_the_manifest_records_each_endpoints_limit_history(fake_server, tmp_path):
    model = f"openai/say@delay=0.02@cap=2@id={uuid.uuid4().hex[:8]}"
    options = AgentOptions(api_base=fake_server.api_base, concurrency=6, extra={"retry_base_delay": 0.01})
    config = RunConfig(
        out=tmp_path / "run", tasks=["maze-fo"], models=[model], episodes=12, concurrency=12,
        max_turns=3, agent_options=options,
    )  # fmt: skip
    result = await Runner(config).run()
    assert result.errors == 0
    (limits,) = read_manifest(tmp_path / "run")["endpoint_limits"].values()
    assert limits["start"] == 6 and limits["ceiling"] == 24 and limits["rate_limited"] > 0
    assert limits["history"][0] == [0.0, 6, "start"] and limits["min"] < 6
    assert any(entry[2] == "429" for entry in limits["history"])
