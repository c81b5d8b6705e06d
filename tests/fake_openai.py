"""An OpenAI-compatible HTTP server on 127.0.0.1 that plays scripted models, for tests and benchmarks.

litellm reaches it over real HTTP as ``openai/<model>`` with ``api_base=http://127.0.0.1:<port>/v1``.
The model name selects a brain and options: ``<brain>[@key=value]...``

brains   maze     shortest-path mover for maze-fo (reads the position from the last user message)
         wordle   guesses words consistent with the feedback so far (reads the chat history)
         say      always answers the text of option ``text`` (default ``move up``)
options  delay=S        answer after S seconds
         fail=CODExN    the first N requests for this exact model name get HTTP CODE
         retry=S        with fail=429 or cap: send ``Retry-After: S``
         cap=K[xN]      a rate limiter: a request arriving while K requests of this model name are
                        in flight gets HTTP 429 at once (only among the first N requests, if given)
         malformed=N    the first N requests get a 200 whose body is not JSON

``GET /v1/models`` lists nothing (any name is played); under ``/listed/v1`` the same server lists the
brain names as the models it serves. ``GET /requests`` returns every request seen (model, first user
message, message count, and the other body fields as ``params``: temperature, top_p, stop, provider
extras...; ``status: 429`` on the ones ``cap`` turned away);
``POST /reset`` forgets them. Run: ``python tests/fake_openai.py [--port P] [--port-file F]``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_POSITION = re.compile(r"position (\d+), (\d+)\.")


def parse_model(name: str) -> tuple[str, dict[str, str]]:
    brain, *parts = name.split("@")
    return brain, dict(p.split("=", 1) for p in parts if "=" in p)


def maze_brain(messages: list[dict[str, Any]]) -> str:
    from lmrl.tasks.maze import GOAL, OPTIMAL_MOVE

    found = _POSITION.findall(messages[-1]["content"]) if messages else []
    if not found:
        return "I am lost. Action: move up"
    position = tuple(int(x) for x in found[-1])
    if position == GOAL:
        return "Action: move up"
    return f"I should head for the goal.\nAction: {OPTIMAL_MOVE[position]}"


def wordle_brain(messages: list[dict[str, Any]]) -> str:
    from lmrl.tasks.wordle import consistent, default_vocabulary

    words = default_vocabulary()
    history: list[tuple[str, str]] = []
    for message in messages:
        if message["role"] == "user":
            for guess, pattern in re.findall(r"\b([a-z]{5}) -> ([gyb](?: [gyb]){4})", message["content"]):
                history.append((guess, pattern.replace(" ", "")))
    candidates = [w for w in words if all(consistent(w, g, p) for g, p in history)]
    return f"Guess: {(candidates or words)[0]}"


def brain_reply(brain: str, options: dict[str, str], messages: list[dict[str, Any]]) -> str:
    if brain == "maze":
        return maze_brain(messages)
    if brain == "wordle":
        return wordle_brain(messages)
    return options.get("text", "move up")


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.in_flight: dict[str, int] = defaultdict(int)
        self.authorization = ""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.authorization = request.headers.get("Authorization", "")
        return await self._answer(body, body.get("messages", []), chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body.get("prompt", "")
        return await self._answer(body, [{"role": "user", "content": prompt}], chat=False)

    async def _answer(
        self, body: dict[str, Any], messages: list[dict[str, Any]], chat: bool
    ) -> web.StreamResponse:
        model = body.get("model", "")
        options = parse_model(model)[1]
        self.counts[model] += 1
        n = self.counts[model]
        first_user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        params = {k: v for k, v in body.items() if k not in ("model", "messages", "prompt")}
        record: dict[str, Any] = {"model": model, "first_user": first_user, "messages": len(messages)}
        record.update(params=params, t=time.time())
        self.requests.append(record)
        if "cap" in options:
            limit, _, first = options["cap"].partition("x")
            if self.in_flight[model] >= int(limit) and (not first or n <= int(first)):
                record["status"] = 429
                headers = {"Retry-After": options["retry"]} if "retry" in options else {}
                error = {"error": {"message": "rate limited", "type": "rate_limit_error", "code": "429"}}
                return web.json_response(error, status=429, headers=headers)
        self.in_flight[model] += 1
        try:
            return await self._reply(model, n, messages, chat)
        finally:
            self.in_flight[model] -= 1

    async def _reply(self, model: str, n: int, messages: list[dict[str, Any]], chat: bool) -> web.Response:
        brain, options = parse_model(model)
        if "delay" in options:
            await asyncio.sleep(float(options["delay"]))
        if "fail" in options:
            code, times = options["fail"].split("x")
            if n <= int(times):
                headers = {"Retry-After": options["retry"]} if "retry" in options else {}
                message = f"scripted failure {code}"
                if code == "401":  # like OpenAI's: the error echoes the key it was given
                    message = f"Incorrect API key provided: {self.authorization.removeprefix('Bearer ')}"
                error = {"error": {"message": message, "type": "server_error", "code": code}}
                return web.json_response(error, status=int(code), headers=headers)
        if "malformed" in options and n <= int(options["malformed"]):
            return web.Response(text="{this is not json", content_type="application/json")
        text = brain_reply(brain, options, messages)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text) // 4 + 1,
            "total_tokens": prompt_tokens + len(text) // 4 + 1,
        }
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return web.json_response(
            {
                "id": f"fake-{n}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
                "usage": usage,
            }
        )

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def reset(self, request: web.Request) -> web.Response:
        self.requests.clear()
        self.counts.clear()
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)  # lists nothing: it plays any model name
        # a server that lists what it serves (the brain names), for the preflight check
        app.router.add_post("/listed/v1/chat/completions", self.chat)
        app.router.add_get("/listed/v1/models", self.listed_models)
        app.router.add_get("/requests", self.list_requests)
        app.router.add_post("/reset", self.reset)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def listed_models(self, request: web.Request) -> web.Response:
        names = ("maze", "wordle", "say")
        return web.json_response({"object": "list", "data": [{"id": n, "object": "model"} for n in names]})


async def serve(port: int, port_file: Path | None) -> None:
    runner = web.AppRunner(FakeOpenAI().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    actual = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if port_file:
        port_file.write_text(str(actual))
    print(f"fake OpenAI server on http://127.0.0.1:{actual}/v1", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.port_file))
