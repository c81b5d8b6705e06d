"""Over real HTTP: lmrl's runner against a bare anyio + litellm loop making the same calls.

200 episodes x 20 turns of maze-fo against the scripted local server (instant replies) at concurrency
64 and 256, alternating lmrl and the bare loop so both see the same machine state. Then the distance
to the machine's limit: the direct transport against a plain aiohttp loop making the same calls (one
session, JSON in and out, nothing else) at concurrency 64, 256 and 1024 (target >= 80%); what the
response cache, the budgets and the adaptive limit cost on the direct transport (target < 5%); and
``lmrl run``'s start-up: process start to the first request at the server. Then the
latency-bound case: the server answers after 500 ms, 256 episodes x 20 turns at concurrency 64, wall
time against the ideal 4 rounds x 20 turns x 0.5 s = 40 s. Targets: >= 95% of the bare loop, >= 90% of ideal.
Then a 429 storm: the server answers in 50 ms but allows only K calls in flight and answers 429 beyond
(no Retry-After, then Retry-After: 1); the adaptive per-endpoint limit against a fixed limit at the
same starting concurrency, alternating, with the default retry policy (6 retries, 1 s base backoff).

    python bench/http_throughput.py [--repeats 3] [--only litellm|direct|features|startup|latency|storm]
                                    [--feature none|adaptive|budgets|cache|all]  (rows of --only features)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import _common  # noqa: F401
import aiohttp
import anyio
from _common import fake_server, median

from lmrl.agents import AgentOptions
from lmrl.agents.litellm_agent import _litellm
from lmrl.rundir import read_manifest
from lmrl.runner import RunConfig, Runner
from lmrl.tasks import make_task

TURNS = 20


@contextmanager
def litellm_defaults():
    """Undo lmrl's one litellm tweak (skipping unobserved success logging) for the bare loop."""
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER as worker

    patched = worker.ensure_initialized_and_enqueue
    worker.ensure_initialized_and_enqueue = getattr(patched, "__wrapped__", patched)
    try:
        yield
    finally:
        worker.ensure_initialized_and_enqueue = patched


async def bare_loop(api_base: str, model: str, episodes: int, concurrency: int) -> float:
    """The floor: each episode makes TURNS sequential acompletion calls with a growing chat, with
    litellm as it comes (callers wrap this in ``litellm_defaults``)."""
    litellm = _litellm()
    task = make_task("maze-fo")
    system, first = task.system_prompt(), task.reset(0, 0)
    limiter = anyio.CapacityLimiter(concurrency)

    async def episode() -> None:
        async with limiter:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": first}]
            for _ in range(TURNS):
                response = await litellm.acompletion(
                    model=model,
                    messages=messages,
                    api_base=api_base,
                    api_key="EMPTY",
                    num_retries=0,
                    timeout=120,
                )
                messages += [
                    {"role": "assistant", "content": response.choices[0].message.content},
                    {"role": "user", "content": first},
                ]

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(episodes):
            group.start_soon(episode)
    return episodes * TURNS / (time.perf_counter() - started)


async def plain_loop(api_base: str, model: str, episodes: int, concurrency: int) -> float:
    """The machine's limit for these calls: each episode makes TURNS sequential chat-completion POSTs
    with a growing chat through one plain aiohttp session (json.dumps out, json.loads back)."""
    task = make_task("maze-fo")
    system, first = task.system_prompt(), task.reset(0, 0)
    limiter = anyio.CapacityLimiter(concurrency)
    name = model.split("/", 1)[1]
    url = api_base + "/chat/completions"
    headers = {"Authorization": "Bearer EMPTY", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)

    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def episode() -> None:
            async with limiter:
                messages = [{"role": "system", "content": system}, {"role": "user", "content": first}]
                for _ in range(TURNS):
                    body = json.dumps({"model": name, "messages": messages})
                    async with session.post(url, data=body) as response:
                        payload = json.loads(await response.read())
                    messages += [
                        {"role": "assistant", "content": payload["choices"][0]["message"]["content"]},
                        {"role": "user", "content": first},
                    ]

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(episodes):
                group.start_soon(episode)
        return episodes * TURNS / (time.perf_counter() - started)


def lmrl_run(
    api_base: str,
    model: str,
    episodes: int,
    concurrency: int,
    transport: str,
    adaptive: bool = True,
    cache: bool = False,
    budgets: bool = False,
) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        options = AgentOptions(
            api_base=api_base,
            concurrency=concurrency,
            adaptive_concurrency=adaptive,
            extra={"transport": transport},
        )
        never = {"max_cost": 1e9, "max_episode_tokens": 10**12, "max_episode_seconds": 1e9}
        limits = never if budgets else {}  # checked on every call and turn, never reached
        config = RunConfig(
            out=Path(tmp) / "run",
            tasks=["maze-fo"],
            models=[model],
            episodes=episodes,
            concurrency=concurrency,
            max_turns=TURNS,
            agent_options=options,
            cache=Path(tmp) / "cache" if cache else None,  # a fresh cache: every call a miss, then a write
            **limits,
        )
        result = anyio.run(Runner(config).run)
        assert result.errors == 0 and result.turns == episodes * TURNS, result
        return result.turns / result.wall_s, result.wall_s


def direct_vs_plain(api_base: str, episodes: int, repeats: int) -> None:
    print(
        f"direct transport vs a plain aiohttp loop: maze-fo, {TURNS} turns per episode, full history each "
        f"call, max({episodes}, concurrency) episodes, alternating; medians of {repeats}"
    )
    print("| concurrency | plain aiohttp loop | lmrl, direct transport | direct / plain |")
    print("|---|---|---|---|")
    for concurrency in (64, 256, 1024):
        count = max(episodes, concurrency)
        rates: dict[str, list[float]] = {"plain": [], "direct": []}
        for _ in range(repeats):
            model = f"openai/say@id={uuid.uuid4().hex[:6]}"
            rates["plain"].append(anyio.run(plain_loop, api_base, model, count, concurrency))
            rates["direct"].append(lmrl_run(api_base, model, count, concurrency, "direct")[0])
        ratio = median([d / p for d, p in zip(rates["direct"], rates["plain"], strict=True)])
        print(
            f"| {concurrency} | {median(rates['plain']):,.0f} turns/s "
            f"| {median(rates['direct']):,.0f} turns/s | {ratio:.2f} |",
            flush=True,
        )


# short name (--feature): (row label, switches); every row is timed against "none"
FEATURES = {
    "none": ("none (fixed limit, no cache, no budgets)", {"adaptive": False}),
    "adaptive": ("adaptive limit (the default)", {"adaptive": True}),
    "budgets": (
        "budgets (--max-cost, --max-episode-tokens, --max-episode-seconds)",
        {"adaptive": False, "budgets": True},
    ),
    "cache": ("--cache (every call a miss and a write)", {"adaptive": False, "cache": True}),
    "all": ("all three", {"adaptive": True, "budgets": True, "cache": True}),
}


def features(
    api_base: str, episodes: int, repeats: int, concurrency: int = 256, chosen: list[str] | None = None
) -> None:
    names = ["none", *[name for name in chosen or FEATURES if name != "none"]]
    print(
        f"what the features cost on the direct transport: {episodes} maze-fo episodes x {TURNS} turns, "
        f"concurrency {concurrency}, instant server, alternating; medians of {repeats}"
    )
    print("| switched on | turns/s | vs none |")
    print("|---|---|---|")
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            model = f"openai/say@id={uuid.uuid4().hex[:6]}"
            switches = FEATURES[name][1]
            rates[name].append(lmrl_run(api_base, model, episodes, concurrency, "direct", **switches)[0])
    for name, rows in rates.items():
        ratio = median([r / b for r, b in zip(rows, rates["none"], strict=True)])
        print(f"| {FEATURES[name][0]} | {median(rows):,.0f} | {ratio - 1:+.1%} |", flush=True)


def startup(api_base: str, repeats: int) -> None:
    """``lmrl run`` on the direct transport: process start to the server's first request, and the
    whole command (2 episodes, then the Parquet export and the summary)."""
    firsts, wholes, imported = [], [], []
    requests_url = api_base.removesuffix("/v1") + "/requests"
    probe = "import sys; from lmrl.cli import main; main(sys.argv[1:]); print('litellm' in sys.modules)"
    for _ in range(repeats):
        model = f"openai/say@id={uuid.uuid4().hex[:6]}"
        with tempfile.TemporaryDirectory() as tmp:
            args = ["run", "--task", "maze-fo", "--model", model, "--api-base", api_base, "--episodes", "2"]
            args += ["--out", str(Path(tmp) / "run"), "--no-progress"]
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-c", probe, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            first = None
            while first is None and process.poll() is None:
                with urllib.request.urlopen(requests_url) as response:
                    if any(r["model"] == model.removeprefix("openai/") for r in json.load(response)):
                        first = time.perf_counter() - started
                time.sleep(0.005)
            out, _ = process.communicate()
            wholes.append(time.perf_counter() - started)
            firsts.append(first if first is not None else float("nan"))
            imported.append(out.decode().strip().splitlines()[-1])
    print(
        f"start-up of `lmrl run` (direct transport, 2 episodes; median of {repeats}): first request "
        f"{median(firsts):.2f} s after process start, whole command {median(wholes):.2f} s; "
        f"litellm imported: {', '.join(sorted(set(imported)))}",
        flush=True,
    )


def storm_run(api_base: str, cap: int, retry: str, episodes: int, concurrency: int, adaptive: bool) -> dict:
    """One maze-fo run against a server allowing ``cap`` calls in flight; turns/s, 429s, limits."""
    model = f"openai/say@delay=0.05@cap={cap}{retry}@id={uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        options = AgentOptions(api_base=api_base, concurrency=concurrency, adaptive_concurrency=adaptive)
        config = RunConfig(
            out=Path(tmp) / "run",
            tasks=["maze-fo"],
            models=[model],
            episodes=episodes,
            concurrency=episodes,
            max_turns=TURNS,
            agent_options=options,
        )
        result = anyio.run(Runner(config).run)
        (limits,) = read_manifest(config.out)["endpoint_limits"].values()
    with urllib.request.urlopen(api_base.removesuffix("/v1") + "/requests") as response:
        seen = [r for r in json.load(response) if r["model"] == model.removeprefix("openai/")]
    return {
        "turns_s": result.turns / result.wall_s,
        "wall_s": result.wall_s,
        "turns": result.turns,
        "errors": result.errors,
        "requests": len(seen),
        "429s": sum(r.get("status") == 429 for r in seen),
        "limits": limits,
    }


def storm(api_base: str, repeats: int) -> None:
    cap, episodes, concurrency = 8, 64, 32
    print(
        f"429 storm: {episodes} maze-fo episodes x {TURNS} turns in flight together, 50 ms replies, the "
        f"server allows {cap} calls in flight (ideal {cap / 0.05:.0f} turns/s); model concurrency "
        f"{concurrency} at the start; medians of {repeats}"
    )
    print("| server's 429 | limit | turns/s | wall | 429s | 429s per turn | errored episodes | limit range |")
    print("|---|---|---|---|---|---|---|---|")
    for retry, label in (("", "no Retry-After"), ("@retry=1", "Retry-After: 1")):
        runs: dict[bool, list[dict]] = {True: [], False: []}
        for _ in range(repeats):
            for adaptive in (True, False):
                runs[adaptive].append(storm_run(api_base, cap, retry, episodes, concurrency, adaptive))
        for adaptive in (True, False):
            rows = runs[adaptive]

            def med(key: str, rows: list[dict] = rows) -> float:
                return median([row[key] for row in rows])

            low, high = min(r["limits"]["min"] for r in rows), max(r["limits"]["max"] for r in rows)
            print(
                f"| {label} | {'adaptive' if adaptive else 'fixed'} {concurrency} | {med('turns_s'):,.1f} "
                f"| {med('wall_s'):.1f} s | {med('429s'):,.0f} "
                f"| {median([r['429s'] / max(r['turns'], 1) for r in rows]):.2f} "
                f"| {med('errors'):.0f} | {low}-{high} |",
                flush=True,
            )


SECTIONS = ("litellm", "direct", "features", "startup", "latency", "storm")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections; repeat")
    parser.add_argument(
        "--feature", action="append", choices=list(FEATURES), help="--only features: these rows (and none)"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument("--storm-only", action="store_true")
    args = parser.parse_args()
    chosen = set(args.only or (["storm"] if args.storm_only else SECTIONS))
    chosen -= {"latency"} if args.skip_latency else set()
    chosen -= {"storm"} if args.skip_storm else set()
    with fake_server() as api_base:
        if "startup" in chosen:
            startup(api_base, args.repeats)
        if "direct" in chosen:
            direct_vs_plain(api_base, args.episodes, args.repeats)
        if "features" in chosen:
            features(api_base, args.episodes, args.repeats, chosen=args.feature)
        if "litellm" in chosen:
            litellm_vs_bare(api_base, args.episodes, args.repeats)
        if "latency" in chosen:
            latency(api_base)
        if "storm" in chosen:
            storm(api_base, args.repeats)


def litellm_vs_bare(api_base: str, episodes: int, repeats: int) -> None:
    model = f"openai/say@id={uuid.uuid4().hex[:6]}"  # always "move up": never reaches the goal
    anyio.run(bare_loop, api_base, model, 20, 8)  # warm litellm
    print(f"{episodes} episodes x {TURNS} turns, instant server, median of {repeats}")
    print(
        "| concurrency | bare litellm loop | lmrl, litellm transport | ratio "
        "| lmrl, direct transport | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for concurrency in (64, 256):
        rates: dict[str, list[float]] = {"bare": [], "litellm": [], "direct": []}
        for _ in range(repeats):
            with litellm_defaults():
                rates["bare"].append(anyio.run(bare_loop, api_base, model, episodes, concurrency))
            for transport in ("litellm", "direct"):
                rates[transport].append(lmrl_run(api_base, model, episodes, concurrency, transport)[0])
        bare = median(rates["bare"])
        lite = median([o / b for o, b in zip(rates["litellm"], rates["bare"], strict=True)])
        direct = median([o / b for o, b in zip(rates["direct"], rates["bare"], strict=True)])
        print(
            f"| {concurrency} | {bare:,.0f} turns/s | {median(rates['litellm']):,.0f} turns/s | {lite:.2f} "
            f"| {median(rates['direct']):,.0f} turns/s | {direct:.1f} |"
        )


def latency(api_base: str) -> None:
    slow = f"openai/say@delay=0.5@id={uuid.uuid4().hex[:6]}"
    ideal = 4 * TURNS * 0.5
    print(f"latency-bound: 256 episodes x {TURNS} turns, 500 ms replies, concurrency 64, ideal {ideal:.0f} s")
    started = time.perf_counter()
    with litellm_defaults():
        anyio.run(bare_loop, api_base, slow, 256, 64)
    bare_wall = time.perf_counter() - started
    print(f"| bare litellm loop | {bare_wall:.1f} s | {ideal / bare_wall:.1%} of ideal |")
    for transport in ("litellm", "direct"):
        _, wall = lmrl_run(api_base, slow, 256, 64, transport)
        print(f"| lmrl, {transport} transport | {wall:.1f} s | {ideal / wall:.1%} of ideal |")


if __name__ == "__main__":
    main()
