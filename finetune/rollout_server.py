"""Online rollouts on an OpenAI-compatible server (``lmrl train --rollout-server URL``).

On GPUs the fastest rollout engine is a serving engine (vLLM, SGLang, ``transformers serve``), not the
trainer's own ``generate``. With ``--rollout-server`` each round's episodes are played by the server
through the harness's ordinary API agent (``hosted_vllm/<name>``, direct transport, text completions),
and the weights reach the server once per round, before the round, in one of two ways:

- ``path`` (the default): each round's requests name the round's checkpoint directory as the model.
  ``transformers serve`` (started without a forced model) loads any local checkpoint named in a
  request, so every round plays the weights just saved. The server must see the trainer's files.
- ``post:/ROUTE``: a JSON ``POST {"model_path": DIR}`` to ``ROUTE`` on the server's origin before the
  round, for engines that reload weights from disk in place: SGLang's ``/update_weights_from_disk``,
  or a vLLM server given such a route. Requests keep naming the served model (``--rollout-model``,
  default the first one the server lists).

Training wants the token ids the server sampled and their log-probabilities. Each request asks for
``logprobs``; a server that answers with token ids (vLLM with ``return_tokens_as_token_ids``, passed
with ``--rollout-request return_tokens_as_token_ids=true``) gives them exactly. A server that does not
(``transformers serve``) leaves the turn without ids: training then tokenizes the parsed action the
way the offline data does and takes the old log-probabilities from the policy itself, which holds the
very weights the server played (ratio 1 on the first pass). ``train_log.jsonl`` says which share of a
round's turns carried the server's own ids (``sampled_ids``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lmrl.finetune.trainer import TrainError

SYNC_TIMEOUT_S = 900.0  # reloading a large checkpoint from disk takes minutes
API_KEY_VARIABLE = "HOSTED_VLLM_API_KEY"


@dataclass
class RolloutServer:
    url: str  # the OpenAI-compatible base, usually ending in /v1
    sync: str = "path"  # path | post:/ROUTE
    model: str | None = None  # post: the served model's name (default: the first the server lists)
    request: dict[str, Any] = field(default_factory=dict)  # extra fields on every request

    def check(self) -> None:
        """Bad settings and an unreachable server, in one line, before any round."""
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise TrainError(f"--rollout-server {self.url!r} is not an http(s) URL")
        if self.sync != "path" and not (self.sync.startswith("post:/") and len(self.sync) > 6):
            raise TrainError(f"--rollout-sync must be path or post:/ROUTE, not {self.sync!r}")
        if self.model is not None and self.sync == "path":
            raise TrainError("--rollout-model names the served model for --rollout-sync post:/ROUTE")
        self._get("/models")  # reachable, and the base is an OpenAI-compatible one

    def prepare(self, checkpoint: Path) -> str:
        """Bring ``checkpoint``'s weights to the server; the model name this round's requests use."""
        checkpoint = checkpoint.resolve()
        if self.sync == "path":
            return str(checkpoint)
        route = self.sync.removeprefix("post:")
        answer = self._post(route, {"model_path": str(checkpoint)})
        if isinstance(answer, dict) and answer.get("success") is False:  # SGLang's way to refuse
            raise TrainError(f"the rollout server did not load {checkpoint}: {answer.get('message', answer)}")
        return self.model or self._first_served()

    def agent(self, name: str) -> tuple[str, Any]:
        """The agent spec and options that play a round against the server: the policy's sampling
        (temperature 1, the local agent's reply length, stop at the newline) plus the log-probabilities."""
        from lmrl.agents import AgentOptions
        from lmrl.agents.local import DEFAULT_MAX_NEW_TOKENS

        options = AgentOptions(
            temperature=1.0,
            max_tokens=DEFAULT_MAX_NEW_TOKENS["text"],
            api_base=self.url,
            preflight=self.sync != "path",  # a checkpoint is listed only once the server loaded it
            extra={"transport": "direct", "provider": {"logprobs": 1, **self.request}},
        )
        return f"hosted_vllm/{name}", options

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "sync": self.sync, "model": self.model, "request": dict(self.request)}

    # --- HTTP ------------------------------------------------------------------------------------
    def _first_served(self) -> str:
        served = [m.get("id") for m in (self._get("/models").get("data") or []) if isinstance(m, dict)]
        if not served:
            raise TrainError(f"{self.url}/models lists no model: give --rollout-model NAME")
        return str(served[0])

    def _get(self, path: str) -> dict[str, Any]:
        return self._call(urllib.request.Request(self.url.rstrip("/") + path, headers=_auth()), 30.0)

    def _post(self, route: str, body: dict[str, Any]) -> Any:
        parsed = urlparse(self.url)
        request = urllib.request.Request(
            f"{parsed.scheme}://{parsed.netloc}{route}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **_auth()},
            method="POST",
        )
        return self._call(request, SYNC_TIMEOUT_S)

    def _call(self, request: urllib.request.Request, timeout: float) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read()[:200].decode("utf-8", "replace").strip()
            message = f"the rollout server answered HTTP {error.code} to {request.full_url}: {detail}"
            raise TrainError(message) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TrainError(f"cannot reach the rollout server {self.url}: {reason}") from None
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise TrainError(f"the rollout server's answer to {request.full_url} is not JSON") from None


def _auth() -> dict[str, str]:
    """The key a server started with one (``vllm serve --api-key``) wants: ``HOSTED_VLLM_API_KEY``, the
    variable the rollout agent (``hosted_vllm/``) reads too; never logged."""
    key = os.environ.get(API_KEY_VARIABLE)
    return {"Authorization": f"Bearer {key}"} if key else {}


@contextlib.contextmanager
def transformers_serve(args: list[str], log: Path, start_timeout_s: float = 90.0) -> Iterator[str]:
    """``transformers serve ARGS`` on a free port of 127.0.0.1 until the block ends (offline, one
    intra-op thread per request thread); yields its ``/v1`` base. For tests and benchmarks."""
    script = Path(sys.executable).parent / "transformers"
    command = [str(script)] if script.exists() else [shutil.which("transformers") or "transformers"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # One OpenMP thread: the server runs requests in parallel threads, and OpenMP pools on a small CPU
    # slow each other down by an order of magnitude.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*command, "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
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
            if process.poll() is not None or time.perf_counter() - started > start_timeout_s:
                raise RuntimeError(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
