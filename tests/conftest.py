from __future__ import annotations

import os

# Before any litellm import anywhere in the test session.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["HF_HUB_OFFLINE"] = "1"
# torch's OpenMP threads busy-wait by default and slow down 5-10x when anything else wants the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# The files that take longest (launched trainings, online rounds) start first, so that under
# `make test`'s two workers (a file each at a time) no long file is left running alone at the end.
LONGEST_FIRST = ("test_train_distributed.py", "test_train.py", "test_online.py", "test_rollout_server.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every file keeps its own order


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.api_base = f"http://127.0.0.1:{port}/v1"

    def requests(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/requests", timeout=10) as response:
            return json.load(response)

    def reset(self) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def fake_server(tmp_path_factory: pytest.TempPathFactory):
    """The scripted OpenAI-compatible server, in its own process, on a free port of 127.0.0.1."""
    yield from _serve_fake(tmp_path_factory)


@pytest.fixture(scope="session")
def second_fake_server(tmp_path_factory: pytest.TempPathFactory):
    """Another one, for partners and judges that have an endpoint of their own."""
    yield from _serve_fake(tmp_path_factory)


def _serve_fake(tmp_path_factory: pytest.TempPathFactory):
    port_file = tmp_path_factory.mktemp("fake") / "port"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_openai.py"), "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while not port_file.exists() or not port_file.read_text():
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise RuntimeError(f"fake server did not start: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    yield FakeServer(int(port_file.read_text()))
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def maze_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BC policy of maze-fo, the start of online-RL tests: it says moves, not noise."""
    import lmrl
    from lmrl.finetune.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("maze-policy")
    data = root / "behavior"
    lmrl.run("maze-fo", "scripted/behavior", episodes=40, out=data, max_turns=10)
    out = root / "bc"
    train(
        TrainConfig(algo="bc", data=[str(data)], out=out, max_steps=60, eval_episodes=0, lr=3e-3),
        progress=False,
    )
    return out
