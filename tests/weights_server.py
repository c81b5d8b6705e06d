"""A small OpenAI-compatible server that serves one real checkpoint the way vLLM and SGLang answer an
RL trainer: ``/v1/completions`` samples from the weights and, given ``return_tokens_as_token_ids``,
says each sampled token as ``"token_id:N"`` with its log-probability (the stop string included, as
vLLM's ``include_stop_str_in_output``); ``POST /update_weights_from_disk {"model_path"}`` loads new
weights in place (SGLang's route). ``GET /loads`` lists the paths loaded, in order.

It runs in a thread of the test process: ``with WeightsServer(checkpoint) as server: server.api_base``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

from lmrl.finetune.models import load


class WeightsServer:
    def __init__(self, checkpoint: Path, name: str = "policy", key: str | None = None) -> None:
        self.name = name
        self.key = key  # when set, every request must carry it (as ``vllm serve --api-key``)
        self.loads: list[str] = []
        self._lock = threading.Lock()  # one forward at a time: the weights may be swapped between
        self._generator = torch.Generator().manual_seed(0)
        self._load(checkpoint)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.api_base = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> WeightsServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    def _load(self, path: Path) -> None:
        model, tokenizer = load(Path(path))
        with self._lock:
            self.model, self.tokenizer = model.eval(), tokenizer
            self.loads.append(str(path))

    @torch.no_grad()
    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        temperature = float(body.get("temperature", 1.0))
        with self._lock:
            ids = self.tokenizer(body["prompt"], add_special_tokens=False)["input_ids"]
            limit = self.model.config.max_position_embeddings - int(body.get("max_tokens", 16))
            context, sampled, logprobs = list(ids[-limit:]), [], []
            for _ in range(int(body.get("max_tokens", 16))):
                logits = self.model(torch.tensor([context])).logits[0, -1].float()
                scaled = logits / max(temperature, 1e-6)
                distribution = scaled.log_softmax(-1)
                token = int(torch.multinomial(distribution.exp(), 1, generator=self._generator))
                context.append(token)
                sampled.append(token)
                logprobs.append(float(distribution[token]))
                text = self.tokenizer.decode(sampled)
                if token == self.tokenizer.eos_token_id or any(s in text for s in stops):
                    break
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        tokens = (
            [f"token_id:{t}" for t in sampled] if as_ids else [self.tokenizer.decode([t]) for t in sampled]
        )
        return {
            "id": "cmpl-test",
            "object": "text_completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "text": self.tokenizer.decode(sampled),
                    "finish_reason": "stop",
                    "logprobs": {"tokens": tokens, "token_logprobs": logprobs}
                    if body.get("logprobs")
                    else None,
                }
            ],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": len(sampled)},
        }


def _handler(server: WeightsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _answer(self, status: int, payload: Any) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _refused(self) -> bool:
            if server.key is not None and self.headers.get("Authorization") != f"Bearer {server.key}":
                self._answer(401, {"error": {"message": "invalid API key"}})
                return True
            return False

        def do_GET(self) -> None:
            if self._refused():
                return
            if self.path == "/v1/models":
                self._answer(200, {"object": "list", "data": [{"id": server.name, "object": "model"}]})
            elif self.path == "/loads":
                self._answer(200, server.loads)
            else:
                self._answer(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self._refused():
                return
            if self.path == "/v1/completions":
                if body.get("model") != server.name:
                    self._answer(404, {"error": {"message": f"model {body.get('model')!r} is not served"}})
                    return
                self._answer(200, server.complete(body))
            elif self.path == "/update_weights_from_disk":
                try:
                    server._load(Path(body["model_path"]))
                except Exception as error:
                    self._answer(200, {"success": False, "message": str(error)[:200]})
                    return
                self._answer(200, {"success": True, "message": "loaded"})
            else:
                self._answer(404, {"error": {"message": "not found"}})

    return Handler
