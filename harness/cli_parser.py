"""``lmrl``'s command-line grammar: every subcommand, flag and help text (``lmrl.cli`` runs them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from lmrl.cli_options import count_or_fraction, nonneg_float, positive_int

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's default prints the whole usage block
        print(f"lmrl: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lmrl", description="Benchmark and train multi-turn language agents (LMRL-Gym tasks)."
    )
    parser.add_argument("--version", action="version", version=f"lmrl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    sub.add_parser("tasks", help="list tasks: description, roles, reward range, normalization anchors")

    run = sub.add_parser("run", help="play episodes and log them to a run directory (resumable)")
    run.add_argument(
        "--task",
        action="append",
        required=True,
        help="task name (`lmrl tasks`) or your own task file, path/to/my_task.py[:Class]; repeat for several",
    )
    run.add_argument(
        "--model",
        action="append",
        required=True,
        help="agent spec: scripted/<policy>, or a litellm model such as openai/gpt-4o-mini; repeat",
    )
    run.add_argument(
        "--config",
        metavar="FILE.toml",
        help="run settings from a TOML file whose keys are these options (task = [...], episodes = 100, "
        "[task-option.wordle] vocab = 'full', ...); flags given here override it",
    )
    run.add_argument("--episodes", type=positive_int, default=25, help="episodes per task and model (25)")
    run.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="ROLE=SPEC",
        help="fill a partner role (oracle, buyer, ...) with an agent spec; default: the task's simulator",
    )
    run.add_argument(
        "--epochs", type=positive_int, default=1, help="repeat every episode index this often (1)"
    )
    run.add_argument("--concurrency", type=positive_int, default=32, help="episodes in flight (32)")
    run.add_argument("--seed", type=int, default=0, help="run seed; episode seeds derive from it (0)")
    run.add_argument("--out", type=Path, help="run directory (default runs/<tasks>_<models>_s<seed>)")
    run.add_argument(
        "--resume", action="store_true", help="require an existing run directory and continue it"
    )
    run.add_argument("--retry-errors", action="store_true", help="replay episodes that ended with an error")
    run.add_argument(
        "--style",
        choices=["chat", "text"],
        default="chat",
        help="chat: system prompt + messages (API/instruct models); text: the paper's raw text",
    )
    run.add_argument("--max-turns", type=positive_int, help="cap agent turns below the task's own cap")
    budgets = run.add_argument_group("budgets (a run stopped by one resumes when rerun)")
    budgets.add_argument(
        "--max-cost", type=float, metavar="USD", help="stop the run (all invocations) at this spend"
    )
    budgets.add_argument(
        "--max-episode-tokens", type=positive_int, help="cut an episode (truncated) past this many tokens"
    )
    budgets.add_argument(
        "--max-episode-seconds", type=float, help="cut an episode (truncated) past this wall time"
    )
    budgets.add_argument(
        "--fail-on-error",
        type=count_or_fraction,
        metavar="N|FRACTION",
        help="stop after N errored episodes, or when more than FRACTION of them errored (after 10)",
    )
    run.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="TASK.KEY=VALUE",
        help="task option, e.g. wordle.invalid_penalty=-10 or wordle.vocab=full",
    )
    group = run.add_argument_group(
        "the evaluated models' options (an option that applies to none of them is an error)"
    )
    group.add_argument("--temperature", type=nonneg_float, help="sampling temperature (0 = greedy)")
    group.add_argument("--top-p", type=nonneg_float, help="nucleus sampling, in (0, 1]")
    group.add_argument("--max-tokens", type=positive_int, help="most tokens per reply")
    group.add_argument(
        "--stop", action="append", help="stop string; repeat (text style always stops at newline)"
    )
    group.add_argument("--model-seed", type=int, help="sampling seed passed to the provider or local model")
    group.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the check that an --api-base endpoint serves the model (GET /models) before the run",
    )
    group.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="provider extra sent with every API request as is, e.g. reasoning_effort=low",
    )
    group.add_argument("--api-base", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--timeout", type=nonneg_float, default=120.0, help="seconds per request (120)")
    group.add_argument("--max-retries", type=int, default=6, help="retries per call on 429/5xx/timeouts (6)")
    group.add_argument(
        "--model-concurrency",
        type=positive_int,
        help="calls in flight per API endpoint at the start; halves on 429, grows while calls succeed",
    )
    group.add_argument(
        "--max-model-concurrency", type=positive_int, help="ceiling of that limit (4x --model-concurrency)"
    )
    group.add_argument(
        "--fixed-model-concurrency", action="store_true", help="keep the limit at --model-concurrency"
    )
    group.add_argument(
        "--transport",
        choices=["auto", "litellm", "direct"],
        default="auto",
        help="direct: lean HTTP client for OpenAI-compatible --api-base endpoints (auto picks it for "
        "openai/ and hosted_vllm/ models with --api-base); litellm: any provider",
    )
    local = run.add_argument_group("local checkpoints (local/<dir> or local/smollm2)")
    local.add_argument("--device", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:1, mps")
    local.add_argument(
        "--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="weights' dtype (auto)"
    )
    local.add_argument("--max-batch-size", type=positive_int, help="requests generated together (64)")
    local.add_argument(
        "--local-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other local-agent option: top_k, max_batch_tokens, batch_window_ms, max_prompt_tokens, "
        "share_prefixes, prefix_cache_mb, beta (value-guided checkpoints; README, local checkpoints)",
    )
    partners = run.add_argument_group("partner roles and judges (never inherit the models' options)")
    partners.add_argument(
        "--role-option",
        action="append",
        default=[],
        metavar="ROLE.KEY=VALUE",
        help="an option of one partner role: temperature, top_p, max_tokens, stop, seed, api_base, "
        "timeout, max_retries, concurrency, transport, a local option, or a provider extra",
    )
    partners.add_argument(
        "--judge-option",
        action="append",
        default=[],
        metavar="JUDGE.KEY=VALUE",
        help="an option of one LLM judge (same keys as --role-option), e.g. agent-quality.api_base=URL",
    )
    run.add_argument(
        "--judge",
        action="append",
        default=[],
        metavar="NAME[=MODEL]",
        help="score each finished episode with a judge (`lmrl judges` lists them)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--cache", action="store_true", help="answer API calls from the on-disk response cache (`lmrl cache`)"
    )
    run.add_argument("--cache-dir", type=Path, help="the response cache's directory (implies --cache)")

    score = sub.add_parser("score", help="judge a finished run again, without replaying episodes")
    score.add_argument("run_dir", type=Path, help="a run directory written by `lmrl run`")
    score.add_argument(
        "--judge",
        action="append",
        required=True,
        metavar="NAME[=MODEL]",
        help="judge to apply; repeat (two LLM judges also report their agreement)",
    )
    score.add_argument("--concurrency", type=positive_int, default=16, help="judge calls in flight (16)")
    score.add_argument(
        "--judge-option",
        action="append",
        default=[],
        metavar="JUDGE.KEY=VALUE",
        help="an option of one LLM judge: temperature, top_p, max_tokens, stop, seed, api_base, timeout, "
        "max_retries, transport, or a provider extra",
    )
    score.add_argument("--api-base", help="OpenAI-compatible endpoint for every judge model")
    score.add_argument("--timeout", type=nonneg_float, default=120.0, help="seconds per request (120)")
    score.add_argument("--max-retries", type=int, default=6, help="retries per call (6)")
    score.add_argument(
        "--transport",
        choices=["auto", "litellm", "direct"],
        default="auto",
        help="HTTP client for the judge models (as in `lmrl run`)",
    )

    sub.add_parser("judges", help="list judges: rule judges and LLM judges (which need a model)")

    from lmrl.finetune.cli import add_parser as add_train_parser

    add_train_parser(sub, positive_int, nonneg_float)

    check = sub.add_parser(
        "check-task", help="check that a task obeys the contract (like Gymnasium's check_env)"
    )
    check.add_argument("task", help="a task name or your task file, path/to/my_task.py[:Class]")
    check.add_argument(
        "--episodes", type=positive_int, default=3, help="episodes per scripted policy (3, at most 3)"
    )
    check.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a task option to build it with, e.g. opponent_depth=1 for chess",
    )

    from lmrl.reports.cli import add_parsers as add_report_parsers

    add_report_parsers(sub, positive_int)

    from lmrl.cache_cli import add_parser as add_cache_parser

    add_cache_parser(sub)
    return parser


def _version() -> str:
    from lmrl import __version__

    return __version__
