"""A lean OpenAI-compatible HTTP client: the ``direct`` transport for self-hosted endpoints.

litellm spends ~6-7 ms of CPU per call on provider plumbing, logging and pricing; against a vLLM or
``transformers serve`` endpoint on a 2-core client that CPU, not the network, bounds a multi-turn run
(~130 calls/s). This client does only what an OpenAI-compatible server needs: one aiohttp session
with keep-alive, a JSON POST, and errors shaped so the agent's retry policy treats them like
litellm's (``status_code`` + ``headers`` for 429/5xx/Retry-After; timeouts and connection errors
as the builtin exception types; a garbled body as ``ValueError``).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp


class HTTPStatusError(RuntimeError):
    def __init__(self, status_code: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.headers = headers


class OpenAIHTTPClient:
    def __init__(self, api_base: str, api_key: str, timeout: float, connections: int) -> None:
        self.api_base = api_base.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop (a session is bound to its loop).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            request = self._open().post(self.api_base + path, data=json.dumps(body), timeout=self._timeout)
            async with request as r:
                raw = await r.read()
                if r.status >= 400:
                    raise HTTPStatusError(r.status, _error_message(raw), dict(r.headers))
        except aiohttp.ClientConnectionError as error:
            raise ConnectionError(f"cannot connect to {self.api_base}: {error}") from None
        payload = json.loads(raw)  # ValueError on a garbled body: retried like any transient fault
        if not isinstance(payload, dict) or not payload.get("choices"):
            raise ValueError(f"response has no choices: {raw[:200]!r}")
        return payload

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error_message(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return raw[:300].decode("utf-8", "replace")
