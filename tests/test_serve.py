"""A checkpoint served by ``transformers serve`` (a real OpenAI-compatible server) on 127.0.0.1 is an
ordinary ``openai/<checkpoint dir>`` model for the litellm agent, given ``api_base``.

The same recipe reaches vLLM on a GPU cluster: ``vllm serve <dir>`` then ``hosted_vllm/<dir>`` (or
``openai/<dir>``) with ``--api-base http://host:8000/v1``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def transformers_cli() -> list[str]:
    script = Path(sys.executable).parent / "transformers"
    if script.exists():
        return [str(script)]
    found = shutil.which("transformers")
    if found is None:
        pytest.skip("the transformers command is not installed")
    return [found]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """``transformers serve <tiny checkpoint>`` on a free port of 127.0.0.1; yields (dir, api_base)."""
    checkpoint = build_tiny_model(tmp_path_factory.mktemp("served") / "tiny")
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    # One intra-op thread: the server runs concurrent requests in parallel threads, and two OpenMP
    # pools on 2 cores slow each other down by an order of magnitude.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*transformers_cli(), "serve", str(checkpoint), "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    started = time.perf_counter()
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.perf_counter() - started > 90:
                raise RuntimeError(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield checkpoint, f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
