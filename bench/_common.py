"""Shared plumbing for the benchmarks: the fake OpenAI server process and medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# torch's OpenMP threads busy-wait by default and slow down several times when other jobs share the
# cores (as in the test suite's conftest); benchmarks here often run beside training runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextmanager
def fake_server():
    """Start tests/fake_openai.py on a free port; yield its api_base."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fake_openai.py"), "--port-file", str(port_file)],
            stdout=subprocess.DEVNULL,
        )
        try:
            while not port_file.exists() or not port_file.read_text():
                if process.poll() is not None:
                    raise RuntimeError("fake server exited")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port_file.read_text()}/v1"
        finally:
            process.terminate()
            process.wait()


def median(values: list[float]) -> float:
    return statistics.median(values)


def runner_rate(
    task: str, model: str, episodes: int, concurrency: int, task_options: dict | None = None
) -> tuple[float, int]:
    """(turns per second, turns) of one real run (runner + fsynced episode log) in a temporary directory."""
    import anyio

    from lmrl.runner import RunConfig, Runner

    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(
            out=Path(tmp) / "run", tasks=[task], models=[model], episodes=episodes, concurrency=concurrency
        )
        result = anyio.run(Runner(config).run)
        return result.turns / result.wall_s, result.turns
