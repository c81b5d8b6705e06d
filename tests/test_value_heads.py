"""Value heads (``lmrl.finetune.heads``) and Q-guided decoding (``lmrl.finetune.guidance``) through the
``local/<dir>`` agent: files, the beta option, and that guidance reads each row's own hidden state."""

from __future__ import annotations

import json
import os
import random
import shutil

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see lmrl.agents.local_models)

import anyio  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from lmrl.agents import AgentConfigError, AgentOptions, make_agent  # noqa: E402
from lmrl.agents.local import LocalAgent  # noqa: E402
from lmrl.agents.local_models import loaded_models  # noqa: E402
from lmrl.agents.padded_generation import GenerationOptions, generate_padded  # noqa: E402
from lmrl.agents.prefix_store import PrefixStore  # noqa: E402
from lmrl.cli import main  # noqa: E402
from lmrl.finetune.guidance import QGuidance, load_guidance  # noqa: E402
from lmrl.finetune.heads import (  # noqa: E402
    HEADS_META,
    HEADS_WEIGHTS,
    HeadsMismatchError,
    ValueHeads,
    ValueHeadsError,
    read_meta,
)
from lmrl.models.tiny import build_tiny_model  # noqa: E402
from lmrl.rollout import rollout  # noqa: E402
from lmrl.task import Prompt, Segment  # noqa: E402
from lmrl.tasks import make_task  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama")


def with_heads(source, target, heads: ValueHeads, **meta):
    """A copy of the checkpoint ``source`` with ``heads`` saved beside its weights."""
    shutil.copytree(source, target)
    meta = {"beta": 1.0, "algo": "mc_returns", "extraction": "q", "gamma": 0.99, **meta}
    heads.save(target, **meta)
    return target


def random_heads(hidden: int = 64, vocab: int = 1024, std: float = 0.5, seed: int = 0, **kinds) -> ValueHeads:
    """Heads with weights large enough to change what a tiny model decodes."""
    heads = ValueHeads(hidden, vocab, **kinds)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in heads.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return heads


def favouring(token: int, vocab: int = 1024, **kinds) -> ValueHeads:
    """Heads whose Q is 1 for ``token`` and 0 elsewhere (V = 0)."""
    heads = ValueHeads(64, vocab, **kinds)
    with torch.no_grad():
        for name in ("q1", "q2", "v"):
            layer = getattr(heads, name)
            if layer is not None:
                layer.weight.zero_()
                layer.bias.zero_()
                if name != "v":
                    layer.bias[token] = 1.0 if name == "q1" else 2.0
    return heads


def maze_prompt(i: int, style: str = "chat") -> Prompt:
    task = make_task("maze-fo")
    history = [Segment("observation", task.reset(i, i))]
    history += [Segment("action", "move up"), Segment("observation", task.observe())] * (i % 3)
    return Prompt(task, history, style, random.Random(i))


def up_token(path) -> int:
    """The last token of "move up" (not the end-of-sequence token): what the favoured heads force."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    token = tokenizer("move up", add_special_tokens=False)["input_ids"][-1]
    assert token not in (tokenizer.eos_token_id, tokenizer.unk_token_id)
    return token


def hooks_on(model) -> int:
    return len(model.get_output_embeddings()._forward_pre_hooks)


# --- the heads and their files ---------------------------------------------------------------------
def test_heads_round_trip_exactly_with_their_metadata(tmp_path):
    torch.manual_seed(0)
    heads = random_heads(std=0.3, double_q=True, value=True, targets=True)
    with torch.no_grad():
        heads.q1.weight.add_(1.0)  # online and target heads differ after a Polyak step
    heads.polyak_update(0.25)
    heads.save(tmp_path, beta=4.0, algo="ilql", extraction="advantage", gamma=0.95, tau=0.7)
    assert {p.name for p in tmp_path.iterdir()} == {HEADS_WEIGHTS, HEADS_META}
    assert not (tmp_path / HEADS_WEIGHTS).read_bytes().startswith(b"\x80")  # safetensors, not a pickle

    loaded, meta = ValueHeads.load(tmp_path)
    expected = heads.state_dict()
    assert set(loaded.state_dict()) == set(expected)
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[key]), key
    assert not torch.equal(loaded.q1.weight, loaded.target_q1.weight)
    assert meta["hidden_size"] == 64 and meta["vocab_size"] == 1024
    assert meta["heads"] == ["q1", "q2", "v", "target_q1", "target_q2"]
    assert (meta["beta"], meta["algo"], meta["extraction"], meta["gamma"]) == (4.0, "ilql", "advantage", 0.95)
    assert meta["extra"] == {"tau": 0.7} and meta == read_meta(tmp_path)
    assert not any(p.requires_grad for p in loaded.target_q1.parameters())
    assert all(p.requires_grad for p in loaded.q1.parameters())

    out = loaded(torch.randn(2, 3, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "q1": (2, 3, 1024),
        "q2": (2, 3, 1024),
        "v": (2, 3, 1),
        "target_q1": (2, 3, 1024),
        "target_q2": (2, 3, 1024),
    }
    half, _ = ValueHeads.load(tmp_path, dtype=torch.bfloat16)
    assert half.q1.weight.dtype == torch.bfloat16

    mc = ValueHeads(64, 1024)
    assert mc.names == ["q1"] and set(mc(torch.randn(5, 64))) == {"q1"}


def test_new_heads_start_near_zero_and_polyak_moves_the_targets():
    torch.manual_seed(0)
    heads = ValueHeads(64, 1024, double_q=True, value=True, targets=True)
    hidden = torch.randn(8, 64)  # about the size of a normalised final hidden state
    out = heads(hidden)
    assert out["q1"].abs().max() < 0.05 and out["v"].abs().max() < 0.05
    assert not torch.equal(heads.q1.weight, heads.q2.weight)  # two draws: double Q is not one Q twice
    assert torch.equal(heads.q1.weight, heads.target_q1.weight)
    before = heads.target_q1.weight.clone()
    with torch.no_grad():
        heads.q1.weight.add_(1.0)
    heads.polyak_update(0.1)
    assert torch.allclose(heads.target_q1.weight, before + 0.1, atol=1e-6)


def test_mlp_heads_round_trip_start_near_zero_and_follow_polyak(tmp_path):
    torch.manual_seed(0)
    heads = ValueHeads(64, 1024, double_q=True, value=True, targets=True, mlp=True)
    hidden = torch.randn(8, 64)
    out = heads(hidden)
    assert out["q1"].abs().max() < 0.05 and out["v"].abs().max() < 0.05
    assert not torch.allclose(out["q1"], out["q2"])  # each head its own draw
    assert [tuple(p.shape) for p in heads.q1.parameters()] == [(64, 64), (64,), (1024, 64), (1024,)]
    with torch.no_grad():
        for parameter in heads.q1.parameters():
            parameter.add_(1.0)
    before = [p.clone() for p in heads.target_q1.parameters()]
    heads.polyak_update(0.1)  # every layer of the MLP moves, not just the last
    for moved, old in zip(heads.target_q1.parameters(), before, strict=True):
        assert not torch.equal(moved, old)
    heads.save(tmp_path, beta=2.0, algo="ilql", extraction="advantage", gamma=0.99)
    loaded, meta = ValueHeads.load(tmp_path)
    assert meta["mlp"] is True and loaded.mlp
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, heads.state_dict()[key]), key
    assert torch.equal(loaded(hidden)["target_q1"], heads(hidden)["target_q1"])
    assert not any(p.requires_grad for p in loaded.target_q1.parameters())


def test_heads_files_written_before_mlp_heads_read_as_linear(tmp_path):
    ValueHeads(64, 1024).save(tmp_path, beta=1.0, algo="mc_returns", extraction="q", gamma=0.99)
    meta = json.loads((tmp_path / HEADS_META).read_text())
    del meta["mlp"]
    (tmp_path / HEADS_META).write_text(json.dumps(meta))
    loaded, read = ValueHeads.load(tmp_path)
    assert read["mlp"] is False and isinstance(loaded.q1, torch.nn.Linear)
    (tmp_path / HEADS_META).write_text(
        json.dumps({**meta, "mlp": True})
    )  # the file says MLP, the weights not
    with pytest.raises(ValueHeadsError, match="missing"):
        ValueHeads.load(tmp_path)
    (tmp_path / HEADS_META).write_text(json.dumps({**meta, "mlp": "yes"}))
    with pytest.raises(ValueHeadsError, match="mlp must be true or false"):
        ValueHeads.load(tmp_path)


def test_bad_heads_files_are_one_line_errors(tmp_path):
    heads = ValueHeads(64, 1024)
    with pytest.raises(ValueError, match="needs a value head"):
        heads.save(tmp_path, beta=1.0, algo="ilql", extraction="advantage", gamma=0.99)
    with pytest.raises(ValueError, match="beta"):
        heads.save(tmp_path, beta=-1.0, algo="mc_returns", extraction="q", gamma=0.99)
    heads.save(tmp_path, beta=1.0, algo="mc_returns", extraction="q", gamma=0.99)
    meta = json.loads((tmp_path / HEADS_META).read_text())
    (tmp_path / HEADS_META).write_text(json.dumps({**meta, "extraction": "greedy", "hidden_size": 0}))
    with pytest.raises(ValueHeadsError) as error:
        ValueHeads.load(tmp_path)
    assert (
        "\n" not in str(error.value)
        and "extraction" in str(error.value)
        and "hidden_size" in str(error.value)
    )
    (tmp_path / HEADS_META).write_text(json.dumps({**meta, "double_q": True}))
    with pytest.raises(ValueHeadsError, match="missing"):
        ValueHeads.load(tmp_path)
    (tmp_path / HEADS_META).write_text("{")
    with pytest.raises(ValueHeadsError, match="unreadable"):
        ValueHeads.load(tmp_path)


# --- the local agent -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("heads", "message"),
    [
        (ValueHeads(32, 1024), "hidden size 32 does not fit the model (hidden size 64)"),
        (ValueHeads(64, 1000), "vocabulary size 1000 does not fit the model"),
    ],
    ids=["hidden", "vocab"],
)
async def test_heads_that_do_not_fit_the_model_are_a_one_line_error(heads, message, tiny_dir, tmp_path):
    path = with_heads(tiny_dir, tmp_path / "ckpt", heads)
    agent = LocalAgent(f"local/{path}", AgentOptions(temperature=0, max_tokens=4))
    with pytest.raises(AgentConfigError) as error:
        await agent.preflight()
    assert message in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, AgentConfigError) and not isinstance(error.value, HeadsMismatchError)
    assert loaded_models() == []  # the model was released again


def test_beta_option_is_checked(tiny_dir, tmp_path):
    with pytest.raises(AgentConfigError, match="beta must be a number >= 0"):
        make_agent(f"local/{tiny_dir}", AgentOptions(extra={"beta": -1}))
    with pytest.raises(AgentConfigError, match="beta must be a number >= 0"):
        make_agent(f"local/{tiny_dir}", AgentOptions(extra={"beta": "nan"}))
    # A run's options reach every model it compares: a checkpoint without heads decodes plainly.
    plain = make_agent(f"local/{tiny_dir}", AgentOptions(extra={"beta": 2}))
    assert plain.describe()["value_heads"] is None and plain.describe()["settings"]["beta"] == 2.0
    broken = with_heads(tiny_dir, tmp_path / "ckpt", ValueHeads(64, 1024))
    (broken / HEADS_META).write_text("[]")
    with pytest.raises(AgentConfigError, match="not a JSON object"):
        make_agent(f"local/{broken}")


@pytest.mark.parametrize("mlp", [False, True], ids=["linear", "mlp"])
async def test_beta_zero_decodes_like_the_checkpoint_without_heads(mlp, tiny_dir, tmp_path):
    path = with_heads(tiny_dir, tmp_path / "ckpt", random_heads(mlp=mlp), beta=2.0)

    async def play(spec: str, extra: dict) -> tuple[list[list[int]], dict]:
        agent = make_agent(spec, AgentOptions(temperature=0, max_tokens=8, extra=extra))
        turns = []
        for seed in range(3):
            episode = await rollout("maze-fo", agent, seed, seed, max_turns=3)
            assert episode.error is None
            turns += [turn.token_ids for turn in episode.turns]
        described = agent.describe()
        await agent.aclose()
        return turns, described

    plain, _ = await play(f"local/{tiny_dir}", {})
    zero, described = await play(f"local/{path}", {"beta": 0})
    guided, guided_described = await play(f"local/{path}", {})
    assert zero == plain  # token for token
    assert guided != plain  # the same heads at the saved beta do change the replies
    assert described["logits_processors"] == [] and described["value_heads"]["beta"] == 0.0
    assert guided_described["logits_processors"] == ["QGuidance"]
    assert guided_described["value_heads"] == {
        "algo": "mc_returns",
        "extraction": "q",
        "beta": 2.0,
        "saved_beta": 2.0,
        "gamma": 0.99,
        "heads": ["q1"],
        "guide_with": "q",
    }
    assert loaded_models() == []


@pytest.mark.parametrize(
    ("kinds", "extraction"),
    [({}, "q"), ({"double_q": True, "value": True, "targets": True}, "advantage")],
)
async def test_a_large_beta_makes_greedy_decoding_pick_the_favoured_one(
    kinds, extraction, tiny_dir, tmp_path
):
    token = up_token(tiny_dir)
    path = with_heads(
        tiny_dir, tmp_path / "ckpt", favouring(token, **kinds), beta=0.001, algo="ilql", extraction=extraction
    )
    prompt = maze_prompt(0)
    weak = make_agent(f"local/{path}", AgentOptions(temperature=0, max_tokens=6))  # the saved beta
    strong = make_agent(f"local/{path}", AgentOptions(temperature=0, max_tokens=6, extra={"beta": 1000}))
    weak_reply, strong_reply = await weak.act(prompt), await strong.act(prompt)
    assert strong_reply.token_ids == [token] * 6
    assert weak_reply.token_ids != strong_reply.token_ids
    assert strong.describe()["value_heads"]["beta"] == 1000.0
    assert strong.describe()["value_heads"]["extraction"] == extraction
    model = strong._loaded.model
    assert hooks_on(model) == 2  # one per beta
    await strong.aclose()
    assert hooks_on(model) == 1
    await weak.aclose()
    assert hooks_on(model) == 0 and loaded_models() == []


async def test_agents_with_different_betas_share_the_model_but_not_their_guidance(tiny_dir, tmp_path):
    token = up_token(tiny_dir)
    path = with_heads(tiny_dir, tmp_path / "ckpt", favouring(token), beta=1000.0)
    options = {"temperature": 0, "max_tokens": 6}
    plain_agent = make_agent(f"local/{tiny_dir}", AgentOptions(**options))
    zero = make_agent(f"local/{path}", AgentOptions(**options, extra={"beta": 0}))
    first = make_agent(f"local/{path}", AgentOptions(**options))
    second = make_agent(f"local/{path}", AgentOptions(**options, extra={"beta": 1000}))
    for agent in (zero, first, second):
        await agent.preflight()
    assert zero._loaded is first._loaded is second._loaded
    assert zero.engine is first.engine is second.engine
    assert first.guidance is second.guidance and zero.guidance is None  # equal betas share batches
    prompts = [maze_prompt(i) for i in range(4)]
    replies: dict = {}

    async def act(name: str, agent, i: int) -> None:
        replies[name, i] = (await agent.act(prompts[i])).token_ids

    async with anyio.create_task_group() as group:
        for i in range(4):
            for name, agent in (("plain", plain_agent), ("zero", zero), ("first", first), ("second", second)):
                group.start_soon(act, name, agent, i)
    for i in range(4):
        assert replies["zero", i] == replies["plain", i]
        assert replies["first", i] == replies["second", i] == [token] * 6
    model = first._loaded.model
    assert hooks_on(model) == 1
    await first.aclose()
    assert hooks_on(model) == 1  # still used by the second agent
    await second.aclose()
    assert hooks_on(model) == 0
    await zero.aclose()
    await plain_agent.aclose()
    assert loaded_models() == []


def test_local_option_beta_from_the_command_line_reaches_the_manifest(tiny_dir, tmp_path):
    path = with_heads(tiny_dir, tmp_path / "ckpt", random_heads(), beta=2.0)
    out = tmp_path / "run"
    argv = ["run", "--task", "maze-fo", "--model", f"local/{path}", "--out", str(out), "--no-progress"]
    argv += ["--episodes", "1", "--max-turns", "2", "--max-tokens", "4", "--temperature", "0"]
    assert main([*argv, "--local-option", "beta=0.5"]) == 0
    described = json.loads((out / "manifest.json").read_text())["models"][f"local/{path}"]
    assert described["value_heads"]["beta"] == 0.5 and described["value_heads"]["saved_beta"] == 2.0
    assert described["logits_processors"] == ["QGuidance"]


# --- the processor on padded batches ------------------------------------------------------------------
class Recording(QGuidance):
    """Keeps the hidden state each call used, per row."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[torch.Tensor] = []

    def bonus(self, hidden):
        self.seen.append(hidden.clone())
        return super().bonus(hidden)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_left_padded_batches_guide_each_row_with_its_own_hidden_state(arch, tmp_path):
    path = build_tiny_model(tmp_path / arch, arch=arch)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = [tokenizer(maze_prompt(i, "text").text * (1 + i))["input_ids"] for i in range(5)]
    assert len({len(p) for p in prompts}) == len(prompts)  # real left padding
    options = GenerationOptions(max_new_tokens=6, temperature=0)
    pad = tokenizer.pad_token_id
    plain = generate_padded(model, tokenizer, prompts, options, pad_token_id=pad)

    guide = Recording(random_heads(double_q=True, value=True), beta=1.0, extraction="advantage").attach(model)
    guided = GenerationOptions(max_new_tokens=6, temperature=0, logits_processors=(guide,))
    together = generate_padded(model, tokenizer, prompts, guided, pad_token_id=pad)
    steps = list(guide.seen)
    assert len(steps) == 6 and all(h.shape == (5, 64) for h in steps)
    for row, prompt in enumerate(prompts):
        guide.seen = []
        (alone,) = generate_padded(model, tokenizer, [prompt], guided, pad_token_id=pad)
        assert alone.token_ids == together[row].token_ids
        assert alone.logprobs == pytest.approx(together[row].logprobs, abs=1e-4)  # raw model log-probs
        for step, hidden in enumerate(guide.seen):
            assert torch.allclose(hidden[0], steps[step][row], atol=1e-4), (row, step)
    assert [r.token_ids for r in together] != [r.token_ids for r in plain]  # guidance did something

    store = PrefixStore(2**30)  # reused key/value states feed the same hidden states to the heads
    for _ in range(2):
        reused = generate_padded(model, tokenizer, prompts, guided, pad_token_id=pad, prefix_store=store)
        assert [r.token_ids for r in reused] == [r.token_ids for r in together]
    assert store.stats.tokens_reused > 0

    guide.detach()
    assert hooks_on(model) == 0
    with pytest.raises(RuntimeError, match="attach"):
        generate_padded(model, tokenizer, prompts[:1], guided, pad_token_id=pad)


def test_load_guidance_uses_the_saved_beta_and_beta_zero_is_no_processor(tiny_dir, tmp_path):
    path = with_heads(tiny_dir, tmp_path / "ckpt", random_heads(), beta=3.0)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    processor, meta = load_guidance(path, model)
    assert isinstance(processor, QGuidance) and processor.beta == 3.0 == meta["beta"]
    assert processor.attached and hooks_on(model) == 1
    processor.detach()
    none, _ = load_guidance(path, model, beta=0)
    assert none is None and hooks_on(model) == 0
