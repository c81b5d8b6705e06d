"""API models through litellm: ``openai/gpt-4o-mini``, ``anthropic/...``, ``hosted_vllm/...``, any api_base.

Keys come only from the environment (litellm reads them itself). Retries are ours, not litellm's:
exponential backoff with jitter on rate limits, 5xx, timeouts, connection errors and malformed
bodies, honouring ``Retry-After``. Calls in flight are bounded by one adaptive limit per endpoint,
shared with every other agent on it (``endpoint_limits``): it halves on 429 and grows back.

litellm itself (6-7 s and ~200 MB to import) is imported only when a call goes through it: an
OpenAI-compatible ``api_base`` on the direct transport never needs it, not even for its price map.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import json
import os
import random
import socket
import sys
import time
from typing import Any
from urllib.parse import urlparse

import anyio

from lmrl import cache as response_cache
from lmrl.agents.base import GENERATION_OPTIONS, Agent, AgentConfigError, AgentOptions, Completion
from lmrl.agents.endpoint_limits import CEILING_FACTOR, endpoint_key, endpoint_limiter
from lmrl.agents.openai_http import OpenAIHTTPClient
from lmrl.secrets import one_line
from lmrl.task import Prompt

_RETRY_AFTER_CAP_S = 120.0
_BACKOFF_CAP_S = 60.0
_LOCAL_COST_MAP = "LITELLM_LOCAL_MODEL_COST_MAP"
_configured = False


def _litellm() -> Any:
    """Import litellm lazily (2 s) and switch off per-call work we do not need, once."""
    global _configured
    litellm = _import_litellm()

    if not _configured:
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.drop_params = True  # e.g. `seed` for providers without it: drop, don't fail the run
        _skip_unobserved_success_logging(litellm)
        _configured = True
    return litellm


def _import_litellm() -> Any:
    """``import litellm`` with its bundled price map (its import would otherwise fetch one from the
    network), leaving the caller's environment as it was."""
    if "litellm" in sys.modules:
        return sys.modules["litellm"]
    before = os.environ.get(_LOCAL_COST_MAP)
    os.environ[_LOCAL_COST_MAP] = "True" if before is None else before
    try:
        import litellm
    finally:
        if before is None:
            del os.environ[_LOCAL_COST_MAP]
    return litellm


def _skip_unobserved_success_logging(litellm: Any) -> None:
    """Drop litellm's per-call async success logging while no litellm callback would receive it.

    Every call queues a background coroutine that builds a standard logging payload and recomputes
    the cost (~1-2 ms of CPU) for callbacks lmrl never registers; on 2 cores that CPU is what bounds
    multi-turn throughput. If a user registers litellm callbacks, logging runs as usual.
    """
    try:
        from litellm.litellm_core_utils import logging_worker
    except ImportError:  # a litellm without the worker: nothing to switch off
        return
    worker = logging_worker.GLOBAL_LOGGING_WORKER
    enqueue = worker.ensure_initialized_and_enqueue

    def enqueue_if_observed(async_coroutine: Any) -> None:
        if litellm.callbacks or litellm.success_callback or litellm._async_success_callback:
            enqueue(async_coroutine)
        else:
            async_coroutine.close()

    enqueue_if_observed.__wrapped__ = enqueue  # type: ignore[attr-defined]  (benchmarks restore it)
    worker.ensure_initialized_and_enqueue = enqueue_if_observed


class AgentCallError(RuntimeError):
    """A model call failed for good (after retries, or with a non-retryable error)."""


def _retryable(error: BaseException) -> bool:
    # Only litellm raises litellm's exceptions: while it is not imported, none can be one of them.
    litellm = sys.modules.get("litellm")
    if litellm is not None:
        if isinstance(
            error,
            litellm.AuthenticationError
            | litellm.PermissionDeniedError
            | litellm.NotFoundError
            | litellm.ContextWindowExceededError
            | litellm.ContentPolicyViolationError
            | litellm.BadRequestError,
        ):
            return False
        if isinstance(
            error,
            litellm.RateLimitError
            | litellm.InternalServerError
            | litellm.ServiceUnavailableError
            | litellm.BadGatewayError
            | litellm.APIConnectionError
            | litellm.Timeout
            | litellm.APIResponseValidationError,
        ):
            return True
    if isinstance(error, TimeoutError | ConnectionError):
        return True
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    # litellm.APIError without a status, JSON decoding errors: a garbled body is worth another try.
    return isinstance(error, ValueError) or (litellm is not None and isinstance(error, litellm.APIError))


def _rate_limited(error: BaseException) -> bool:
    """HTTP 429 only: the one answer that says we are too many (5xx says the server is broken)."""
    if getattr(error, "status_code", None) == 429:
        return True
    litellm = sys.modules.get("litellm")
    return litellm is not None and isinstance(error, litellm.RateLimitError)


def retry_after_seconds(error: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``), if it did."""
    if error is None:
        return None
    candidates = [getattr(error, "headers", None), getattr(error, "litellm_response_headers", None)]
    response = getattr(error, "response", None)
    candidates.append(getattr(response, "headers", None))
    for headers in candidates:
        if not headers:
            continue
        try:
            lowered = {str(k).lower(): str(v) for k, v in dict(headers).items()}
        except (TypeError, ValueError):
            continue
        try:
            if "retry-after-ms" in lowered:
                return min(float(lowered["retry-after-ms"]) / 1000, _RETRY_AFTER_CAP_S)
            if "retry-after" in lowered:
                return min(max(float(lowered["retry-after"]), 0.0), _RETRY_AFTER_CAP_S)
        except ValueError:
            continue  # an HTTP-date: fall back to our own backoff
    return None


def _retry_wait(error: BaseException, attempt: int, base_delay: float) -> float:
    """Seconds before the next try: the server's ``Retry-After`` when given, else exponential
    backoff with jitter (``base * 2**(attempt-1) + U(0, base)``, at most a minute)."""
    asked = retry_after_seconds(error)
    if asked is not None:
        return asked
    try:
        backoff = base_delay * 2 ** (attempt - 1) + random.uniform(0, base_delay)
    except OverflowError:
        backoff = _BACKOFF_CAP_S
    return max(0.0, min(backoff, _BACKOFF_CAP_S))


# Providers whose api_base is OpenAI-compatible by definition: the direct transport can serve them.
_OPENAI_COMPATIBLE = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY"}
TRANSPORTS = ("auto", "litellm", "direct")


class LiteLLMAgent(Agent):
    """An API model. ``transport``: ``litellm`` (any provider), ``direct`` (a lean HTTP client for an
    OpenAI-compatible ``api_base``), or ``auto`` = direct for ``openai/`` and ``hosted_vllm/`` models
    with an ``api_base``, litellm otherwise. Both share the retry policy and the concurrency limit."""

    takes_options = GENERATION_OPTIONS | frozenset({"api_base", "transport", "provider"})

    def __init__(self, model: str, options: AgentOptions, style: str = "chat") -> None:
        self.spec = model
        self.model = model
        self.options = options
        self.style = style
        self._base_delay = float(options.extra.get("retry_base_delay", 1.0))
        transport = str(options.extra.get("transport", "auto"))
        direct_provider = _provider_without_litellm(model, options.api_base, transport)
        self.provider = direct_provider or _litellm_provider(model)
        # Rate limits belong to the endpoint: the agent, partners and judges calling it share this.
        self._ceiling = options.max_concurrency or options.concurrency * CEILING_FACTOR
        self.limiter = endpoint_limiter(
            endpoint_key(self.provider, options.api_base),
            options.concurrency,
            self._ceiling,
            options.adaptive_concurrency,
        )
        # What each request carries besides the prompt: exactly what the user set, and nothing they did
        # not (the manifest records this dict as "sent").
        self.sent: dict[str, Any] = {}
        for name in ("temperature", "max_tokens", "seed"):
            value = getattr(options, name)
            if value is not None:
                self.sent[name] = value
        if options.extra.get("top_p") is not None:
            self.sent["top_p"] = float(options.extra["top_p"])
        stops = options.extra.get("stop")
        stops = [stops] if isinstance(stops, str) else list(stops or [])
        if style == "text" and "\n" not in stops:
            stops.append("\n")  # the paper's text policies stop at the first newline
        if stops:
            self.sent["stop"] = stops
        self.sent.update(options.extra.get("provider") or {})  # e.g. reasoning_effort, passed through
        self.transport = self._choose_transport(transport)
        self._http: OpenAIHTTPClient | None = None
        if self.transport == "direct":
            assert options.api_base is not None
            key = os.environ.get(_OPENAI_COMPATIBLE[self.provider]) or "EMPTY"
            self._http = OpenAIHTTPClient(options.api_base, key, options.request_timeout, self._ceiling)
            self._body = dict(self.sent)
            self._body["model"] = model.split("/", 1)[1]
            self._price = _price_per_token(model)
            return
        litellm = _litellm()
        self._fixed: dict[str, Any] = {"model": model, "timeout": options.request_timeout, "num_retries": 0}
        if options.api_base:
            self._fixed["api_base"] = options.api_base
            if not litellm.validate_environment(model=model).get("keys_in_environment", True):
                # A self-hosted OpenAI-compatible server rarely checks keys; litellm still wants one.
                self._fixed["api_key"] = "EMPTY"
        self._fixed.update(self.sent)

    def _choose_transport(self, transport: str) -> str:
        if transport not in TRANSPORTS:
            raise AgentConfigError(f"transport must be one of {', '.join(TRANSPORTS)} (got {transport!r})")
        direct_ok = bool(self.options.api_base) and self.provider in _OPENAI_COMPATIBLE
        if transport == "direct" and not direct_ok:
            raise AgentConfigError(
                "the direct transport needs an openai/ or hosted_vllm/ model and an --api-base"
            )
        if transport == "auto":
            return "direct" if direct_ok else "litellm"
        return transport

    async def preflight(self) -> None:
        if self.options.api_base:
            await _check_reachable(self.options.api_base)
            if self.provider in _OPENAI_COMPATIBLE and self.options.preflight:
                key = os.environ.get(_OPENAI_COMPATIBLE[self.provider]) or "EMPTY"
                await _check_served(self.options.api_base, key, self.model.split("/", 1)[1])
            return
        env = _litellm().validate_environment(model=self.model)
        if not env.get("keys_in_environment", True):
            missing = ", ".join(env.get("missing_keys") or ["an API key"])
            raise AgentConfigError(f"{self.model} needs {missing} set in the environment")

    async def act(self, prompt: Prompt) -> Completion:
        cache = response_cache.current()
        if cache is None:
            return await self._request(prompt)
        key = response_cache.request_key(self._cache_request(prompt), prompt.role)
        started = time.perf_counter()
        hit = await cache.aget(key)
        if hit is not None:
            hit.latency_s = time.perf_counter() - started
            return hit
        completion = await self._request(prompt)
        cache.store(key, self.model, prompt.role, completion)  # queued: the writer thread serializes it
        return completion

    def _cache_request(self, prompt: Prompt) -> dict[str, Any]:
        """What makes this call's reply what it is (the transport does not: both send the same)."""
        request: dict[str, Any] = {
            "model": self.model,
            "endpoint": response_cache.public_endpoint(self.options.api_base),
            "options": self.sent,
        }
        if self.style == "text":
            request["prompt"] = prompt.text
        else:
            request["messages"] = prompt.messages
        return request

    async def _request(self, prompt: Prompt) -> Completion:
        started: float | None = None
        attempts = self.options.max_retries + 1
        # A plain loop, not a retry library: nearly every call succeeds first time, and that path
        # should cost no more than the try it is.
        for attempt in range(1, attempts + 1):
            try:
                # A slot per attempt: a call sleeping before its retry holds none.
                async with self.limiter.slot() as slot:
                    started = started or time.perf_counter()
                    try:
                        if self._http is not None:
                            completion = await self._call_direct(prompt)
                        else:
                            completion = await self._call_litellm(prompt)
                    except Exception as error:
                        if _rate_limited(error):
                            slot.rate_limited(retry_after_seconds(error))
                        raise
                    slot.succeeded()
                break
            except Exception as error:
                if attempt == attempts or not _retryable(error):
                    raise AgentCallError(one_line(error)) from None
                await anyio.sleep(_retry_wait(error, attempt, self._base_delay))
        completion.latency_s = time.perf_counter() - (started or 0.0)
        return completion

    async def _call_litellm(self, prompt: Prompt) -> Completion:
        litellm = _litellm()
        if self.style == "text":
            response = await litellm.atext_completion(prompt=prompt.text, **self._fixed)
            text = response.choices[0].text
        else:
            response = await litellm.acompletion(messages=prompt.messages, **self._fixed)
            text = response.choices[0].message.content
        usage = getattr(response, "usage", None)
        # litellm prices every response from its bundled map; models it does not know cost 0.
        cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost") or 0.0
        return Completion(
            text=text or "",
            tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=float(cost),
        )

    async def _call_direct(self, prompt: Prompt) -> Completion:
        assert self._http is not None
        if self.style == "text":
            payload = await self._http.post("/completions", {**self._body, "prompt": prompt.text})
            text = payload["choices"][0].get("text")
        else:
            payload = await self._http.post("/chat/completions", {**self._body, "messages": prompt.messages})
            text = (payload["choices"][0].get("message") or {}).get("content")
        usage = payload.get("usage") or {}
        tokens_in, tokens_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        token_ids, logprobs = sampled_tokens(payload["choices"][0].get("logprobs"))
        return Completion(
            text=text or "",
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=tokens_in * self._price[0] + tokens_out * self._price[1],
            token_ids=token_ids,
            logprobs=logprobs,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    @classmethod
    async def close_shared(cls) -> None:
        await close_shared_clients()

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "provider": self.provider,
            "style": self.style,
            "transport": self.transport,
            "api_base": self.options.api_base,
            "sent": dict(self.sent),
            "request_timeout": self.options.request_timeout,
            "max_retries": self.options.max_retries,
            "concurrency": self.options.concurrency,
            "max_concurrency": self._ceiling,
            "adaptive_concurrency": self.options.adaptive_concurrency,
            "endpoint": self.limiter.key,
        }


def sampled_tokens(block: Any) -> tuple[list[int] | None, list[float] | None]:
    """The sampled token ids and their log-probabilities, when the server says them as ids: vLLM's
    ``return_tokens_as_token_ids`` writes each token as ``"token_id:N"``, in the completions shape
    (``tokens`` + ``token_logprobs``) or the chat shape (``content: [{token, logprob}]``). Token
    strings without ids are not turned back into ids here: that would be re-tokenizing text."""
    if not isinstance(block, dict):
        return None, None
    if isinstance(block.get("content"), list):
        entries = [e for e in block["content"] if isinstance(e, dict)]
        tokens, values = [e.get("token") for e in entries], [e.get("logprob") for e in entries]
    else:
        tokens, values = block.get("tokens"), block.get("token_logprobs")
    if not isinstance(tokens, list) or not tokens:
        return None, None
    try:
        ids = [int(str(t).removeprefix("token_id:")) for t in tokens if str(t).startswith("token_id:")]
    except ValueError:
        return None, None
    if len(ids) != len(tokens):
        return None, None
    numbers = isinstance(values, list) and all(isinstance(v, int | float) for v in values)
    return (ids, [float(v) for v in values]) if numbers and len(values) == len(ids) else (ids, None)


async def close_shared_clients() -> None:
    """Close litellm's cached HTTP clients. They belong to the event loop that made them, which ends
    with the run; left open, each prints "Unclosed connector" when collected."""
    litellm = sys.modules.get("litellm")
    close = getattr(litellm, "close_litellm_async_clients", None)
    if close is None:
        return
    with contextlib.suppress(Exception):
        await close()
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    for client in list(getattr(cache, "cache_dict", {}).values()):
        closer = getattr(client, "close", None)  # openai SDK clients (text completions) are not covered
        if inspect.iscoroutinefunction(closer):
            with contextlib.suppress(Exception):
                await closer()
    with contextlib.suppress(Exception):
        cache.flush_cache()  # a later run on a new loop must not pick up the closed clients


def _provider_without_litellm(model: str, api_base: str | None, transport: str) -> str | None:
    """The provider of a model the direct transport will serve (``openai/`` or ``hosted_vllm/`` with
    an ``api_base``), read off its prefix as litellm would; None when litellm must be asked."""
    prefix = model.partition("/")[0]
    if api_base and prefix in _OPENAI_COMPATIBLE and transport in ("auto", "direct") and "/" in model:
        return prefix
    return None


def _litellm_provider(model: str) -> str:
    try:
        return str(_litellm().get_llm_provider(model)[1])
    except Exception as error:  # litellm raises BadRequestError with a long explanation
        raise AgentConfigError(
            f"unknown model {model!r}: litellm cannot tell its provider (use e.g. openai/gpt-4o-mini)"
        ) from error


def _price_per_token(model: str) -> tuple[float, float]:
    """(input, output) USD per token from litellm's price map; (0, 0) for models it does not know.

    A self-hosted model is rarely in the map, and importing litellm to learn that costs seconds: while
    litellm is not imported and uses its bundled map, the map's names are read from that JSON file, and
    litellm is imported only for a model the map prices."""
    names = (model, model.split("/", 1)[-1])
    litellm = sys.modules.get("litellm")
    if litellm is None:
        bundled = _bundled_price_names()
        if bundled is not None and not any(name in bundled for name in names):
            return 0.0, 0.0
        litellm = _litellm()
    for name in names:
        entry = litellm.model_cost.get(name)
        if entry:
            prices = (entry.get("input_cost_per_token"), entry.get("output_cost_per_token"))
            return float(prices[0] or 0), float(prices[1] or 0)
    return 0.0, 0.0


@functools.cache
def _bundled_price_names() -> frozenset[str] | None:
    """The model names in litellm's bundled price map (read as JSON, ~20 ms), or None when litellm
    would load another map (``LITELLM_LOCAL_MODEL_COST_MAP`` set to something but true: it fetches
    one) or the file cannot be read."""
    if os.environ.get(_LOCAL_COST_MAP, "true").lower() != "true":
        return None
    try:
        spec = importlib.util.find_spec("litellm")  # finds the package without importing it
        folder = (spec.submodule_search_locations or [None])[0] if spec else None
        if folder is None:
            return None
        with open(os.path.join(folder, "model_prices_and_context_window_backup.json"), "rb") as file:
            return frozenset(json.load(file))
    except (OSError, ValueError):
        return None


async def _check_served(api_base: str, api_key: str, name: str) -> None:
    """Before any episode: ``GET {api_base}/models`` finds a wrong path (404), a refused key (401/403)
    and a model the server does not serve, in one line each, instead of after every episode has been
    played into errors. A server that lists nothing, or fails otherwise, is left to the run."""
    import aiohttp

    url = api_base.rstrip("/") + "/models"
    try:
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as response,
        ):
            status = response.status
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError):
        return
    if status in (401, 403):
        raise AgentConfigError(f"{api_base} refused the API key (HTTP {status})")
    if status == 404:
        raise AgentConfigError(
            f"{url} answered HTTP 404: is --api-base right? (an OpenAI-compatible base usually ends in "
            "/v1; --no-preflight skips this check)"
        )
    if status != 200:
        return
    try:
        served = [str(m.get("id")) for m in json.loads(body).get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return
    if served and name not in served:
        shown = ", ".join(served[:5]) + (", ..." if len(served) > 5 else "")
        raise AgentConfigError(f"{api_base} does not serve a model named {name!r} (it serves: {shown})")


async def _check_reachable(api_base: str) -> None:
    url = urlparse(api_base)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise AgentConfigError(f"api_base {api_base!r} is not an http(s) URL")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp(url.hostname, port)
            await stream.aclose()
    except (OSError, TimeoutError, socket.gaierror) as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise AgentConfigError(f"cannot reach api_base {api_base}: {reason}") from None
