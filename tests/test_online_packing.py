"""Packed episodes in online RL: where a task's rendering only grows (maze-po keeps its history), the
scoring of a round and every online loss run one sequence per episode, and give what the per-turn
layout gives."""

from __future__ import annotations

import pytest
import torch

from lmrl.agents import ScriptedAgent
from lmrl.finetune import grpo, online_filtered_bc, ppo
from lmrl.finetune.models import load
from lmrl.finetune.online import Context, OnlineConfig, _update_units, round_samples, train_online
from lmrl.finetune.policy import EpisodeItems, Item, pack_items, score, turns_of
from lmrl.models.tiny import build_tiny_model
from lmrl.rollout import rollout, run_sync

SETTINGS = {
    "max_length": 512,
    "gamma": 0.99,
    "lam": 0.95,
    "clip": 0.2,
    "value_clip": 0.2,
    "value_coef": 0.5,
    "credit": "turn",
    "scale": False,
    "filter": "success",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, tokenizer = load(build_tiny_model(tmp_path_factory.mktemp("tiny"), arch="gpt2"), None)
    torch.manual_seed(0)
    value_head = torch.nn.Linear(model.config.hidden_size, 1)
    return model.eval(), tokenizer, value_head


def episodes_of(task: str) -> list:
    """Six episodes: three starts, two each (GRPO's groups), some ending at the goal, some cut."""
    plays = [("optimal", 3, None), ("random", 3, 6), ("random", 8, 5), ("behavior", 8, 7), ("random", 0, 4)]
    plays.append(("behavior", 0, 6))
    return [
        run_sync(lambda p=p, i=i, m=m: rollout(task, ScriptedAgent(p), 5, i, style="text", max_turns=m))
        for p, i, m in plays
    ]


def context(tiny, packing: bool, reference: bool = False) -> Context:
    model, tokenizer, value_head = tiny
    ctx = Context(model, tokenizer, dict(SETTINGS), "cpu", value_head=value_head, packing=packing)
    ctx.reference = model if reference else None
    return ctx


def test_scoring_packed_episodes_gives_the_per_turn_numbers(tiny) -> None:
    model, tokenizer, value_head = tiny
    episodes = episodes_of("maze-po")
    flat = [s for turns in round_samples(context(tiny, True), episodes, "maze-po") for s in turns]
    # batch_size 5: chunks end mid-round, so an episode's place in its chunk varies
    per_turn = score(model, flat, tokenizer.pad_token_id, "cpu", 5, value_head)
    packed = score(model, flat, tokenizer.pad_token_id, "cpu", 5, value_head, packing=True)
    for a, b in zip(per_turn, packed, strict=True):  # log-probabilities, values, V after each turn
        assert len(a) == len(b) == len(flat)
        assert torch.allclose(torch.tensor(_flat(a)), torch.tensor(_flat(b)), atol=1e-4)
    assert len(set(packed[2])) > len(episodes)  # finals differ turn by turn: not one value repeated


def _flat(values: list) -> list[float]:
    return [x for v in values for x in (v if isinstance(v, list) else [v])]


@pytest.mark.parametrize("algo", [ppo, grpo, online_filtered_bc])
def test_each_online_loss_on_packed_episodes_equals_the_per_turn_loss(algo, tiny) -> None:
    episodes = episodes_of("maze-po")
    ctx = context(tiny, packing=True, reference=algo is grpo)
    ctx.kl_coef = 0.05 if algo is grpo else 0.0
    samples = round_samples(ctx, episodes, "maze-po")
    items, _ = algo.prepare(ctx, episodes, samples)
    if algo is online_filtered_bc:
        assert items and len(items) < sum(map(len, samples))  # the failures were dropped
    units = pack_items(items)
    assert units is not None and turns_of(units) == len(items)
    assert all(isinstance(u, EpisodeItems) for u in units)
    if algo is ppo:  # prepare scored packed; per turn it computes the same advantages and returns
        again, _ = algo.prepare(context(tiny, packing=False), episodes, samples)
        for a, b in zip(items, again, strict=True):
            assert a.advantages == pytest.approx(b.advantages, abs=1e-4)
            assert a.returns == pytest.approx(b.returns, abs=1e-4)
    per_turn, per_turn_metrics = algo.loss(ctx, items)
    packed, packed_metrics = algo.loss(ctx, units)
    assert packed.item() == pytest.approx(per_turn.item(), rel=1e-4, abs=1e-6)
    for name, value in per_turn_metrics.items():
        assert packed_metrics[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


def test_turns_that_do_not_pack_stay_per_turn(tiny) -> None:
    # maze-fo renders only the current state: a prompt is not a prefix of the next
    ctx = context(tiny, packing=True)
    fo = round_samples(ctx, episodes_of("maze-fo"), "maze-fo")
    assert pack_items([Item(s) for turns in fo for s in turns]) is None
    po = [Item(s) for turns in round_samples(ctx, episodes_of("maze-po"), "maze-po") for s in turns]
    assert pack_items(po[1:] + po[:1]) is None  # not episode by episode, turn by turn
    units, per_batch, action_tokens, _ = _update_units(po, True, 32)
    assert len(units) == 6 and per_batch == round(32 * 6 / len(po))
    assert sum(map(action_tokens, units)) == sum(len(i.sample.action_ids) for i in po)
    units, per_batch, _, _ = _update_units(po, False, 32)
    assert units == po and per_batch == 32


def test_an_episode_that_does_not_pack_trains_turn_by_turn_beside_the_rest(tiny) -> None:
    """A sampled reply whose tokens are not how the next prompt renders it (an invalid answer, a
    non-canonical tokenization) breaks only its own episode's packing."""
    model, tokenizer, value_head = tiny
    episodes = episodes_of("maze-po")
    ctx = context(tiny, packing=True)
    samples = round_samples(ctx, episodes, "maze-po")
    odd = samples[1][0]
    odd.action_ids = odd.action_ids[:-1] + [tokenizer.pad_token_id]  # no longer what turn 1 shows
    items, _ = ppo.prepare(ctx, episodes, samples)
    units = pack_items(items)
    assert units is not None
    assert [len(u.items) for u in units] == [len(samples[0])] + [1] * len(samples[1]) + [
        len(turns) for turns in samples[2:]
    ]
    flat = [s for turns in samples for s in turns]
    per_turn = score(model, flat, tokenizer.pad_token_id, "cpu", 5, value_head)
    mixed = score(model, flat, tokenizer.pad_token_id, "cpu", 5, value_head, packing=True)
    for a, b in zip(per_turn, mixed, strict=True):
        assert torch.allclose(torch.tensor(_flat(a)), torch.tensor(_flat(b)), atol=1e-4)
    assert ppo.loss(ctx, units)[0].item() == pytest.approx(ppo.loss(ctx, items)[0].item(), rel=1e-4)


def test_a_ppo_round_on_maze_po_trains_packed(tmp_path) -> None:
    import lmrl
    from lmrl.finetune.trainer import TrainConfig, train

    data = tmp_path / "behavior"
    lmrl.run("maze-po", "scripted/behavior", episodes=30, out=data, max_turns=8)
    start = tmp_path / "bc"
    bc = TrainConfig(algo="bc", data=[str(data)], out=start, max_steps=40, lr=3e-3, eval_episodes=0)
    train(bc, progress=False)  # no evaluation: a wandering 40-step model would play 25 x 100 moves
    log: list[dict] = []
    config = OnlineConfig(
        algo="ppo", task="maze-po", out=tmp_path / "ppo", base=str(start), rounds=1, episodes_per_round=6,
        max_turns=4, concurrency=6,
    )  # fmt: skip
    train_online(config, progress=False, on_log=log.append)
    assert log[0]["packed"] is True and log[0]["steps"] >= 1
    assert (tmp_path / "ppo" / "model.safetensors").exists()
