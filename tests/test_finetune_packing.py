"""Packed episodes (lmrl.finetune.data.pack_episode / collate_packed): when a task's rendering only
grows (maze-po keeps its history), one sequence per episode holds every turn's context, and every
offline loss on it equals the loss on the per-turn samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmrl.agents import ScriptedAgent
from lmrl.finetune import bc, ilql, mc_returns, models
from lmrl.finetune.data import collate, collate_packed, episode_samples, pack_dataset, pack_episode
from lmrl.models.tiny import build_tiny_model
from lmrl.rollout import rollout, run_sync
from lmrl.tasks import make_task
from lmrl.tasks.maze import DISTANCE, START_CELLS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), arch="gpt2")
    model, tokenizer = models.load(path, None)
    return model.eval(), tokenizer


def play(task: str, policy: str, index: int, max_turns: int | None = None):
    return run_sync(lambda: rollout(task, ScriptedAgent(policy), 5, index, style="text", max_turns=max_turns))


def maze_po_samples(tokenizer, **options):
    """A terminated episode (the optimal policy three moves from the goal) and two truncated ones."""
    near = next(i for i, cell in enumerate(START_CELLS) if DISTANCE[cell] == 3)
    episodes = [
        play("maze-po", "optimal", near),
        play("maze-po", "random", 0, 6),
        play("maze-po", "random", 7, 4),
    ]
    assert episodes[0].terminated and episodes[1].truncated
    task = make_task("maze-po")
    return [episode_samples(task, e, tokenizer, gamma=0.9, **options) for e in episodes]


def test_a_growing_rendering_packs_into_one_sequence_with_every_turn_in_place(tiny) -> None:
    _, tokenizer = tiny
    for samples in maze_po_samples(tokenizer):
        packed = pack_episode(samples)
        assert packed is not None and packed.ids == samples[-1].next_ids
        for sample, start in zip(samples, packed.starts, strict=True):
            assert packed.ids[:start] == sample.prompt_ids  # the context the policy saw at that turn
            assert packed.ids[start : start + len(sample.action_ids)] == sample.action_ids
        assert packed.action_tokens == sum(len(s.action_ids) for s in samples)


def test_a_final_state_past_the_window_goes_after_the_whole_history(tiny) -> None:
    _, tokenizer = tiny
    episode = play("maze-po", "random", 2, 20)  # maze-po shows 40 segments: the final one drops the first
    samples = episode_samples(make_task("maze-po"), episode, tokenizer)
    last = samples[-1]
    played = last.prompt_ids + last.action_ids
    assert last.next_ids[: len(played)] != played
    packed = pack_episode(samples)
    assert packed is not None and packed.ids[: len(played)] == played
    assert tokenizer.decode(packed.ids[len(played) :]) == episode.final_observation + "\n"


def test_a_window_or_a_cut_prompt_does_not_pack(tiny) -> None:
    _, tokenizer = tiny
    fo = episode_samples(make_task("maze-fo"), play("maze-fo", "random", 0, 4), tokenizer)
    assert pack_episode(fo) is None  # maze-fo shows the latest observation only
    tight = [s for samples in maze_po_samples(tokenizer, max_length=40) for s in samples]
    assert any(s.truncated_prompt for s in tight)
    assert pack_dataset(tight) is None  # one episode that cannot pack: the dataset trains per turn


def test_a_budget_that_cuts_prompts_trains_per_turn_and_says_why(tiny, tmp_path, capsys) -> None:
    from lmrl.finetune.trainer import TrainConfig, training_units

    _, tokenizer = tiny
    config = TrainConfig(algo="bc", data=[], out=tmp_path, settings={"max_length": 40})
    tight = [s for samples in maze_po_samples(tokenizer, max_length=40) for s in samples]
    units, per_batch, _, _ = training_units(tight, config)
    assert units is tight and per_batch == config.batch_size
    cut = sum(s.truncated_prompt for s in tight)
    assert f"{cut} of {len(tight)} prompts were cut to --max-length 40" in capsys.readouterr().err
    whole = [s for samples in maze_po_samples(tokenizer) for s in samples]
    units, per_batch, _, _ = training_units(whole, config)
    assert len(units) == 3 and per_batch == round(32 / (len(whole) / 3))
    assert capsys.readouterr().err == ""


def test_collate_packed_puts_rewards_discounts_and_next_states_where_the_turns_are(tiny) -> None:
    _, tokenizer = tiny
    terminated, truncated, _ = maze_po_samples(tokenizer)
    episodes = [pack_episode(terminated), pack_episode(truncated)]
    batch = collate_packed(episodes, tokenizer.pad_token_id)
    assert batch["input_ids"].shape[1] == max(len(e.ids) for e in episodes) + 1
    for row, episode in enumerate(episodes):
        pairs = zip(episode.samples, episode.starts, strict=True)
        last_tokens = [start + len(s.action_ids) - 1 for s, start in pairs]
        assert batch["action_mask"][row].sum() == episode.action_tokens
        assert batch["rewards"][row, last_tokens].tolist() == [s.reward for s in episode.samples]
        # after each action: the end of the next observation (just before the next action), and
        # after the last one the end of the final rendering
        ends = [start - 1 for start in episode.starts[1:]] + [len(episode.ids) - 1]
        assert batch["next_state"][row, last_tokens].tolist() == ends
        first = episode.starts[0]
        assert int(batch["next_state"][row, first]) == first  # inside an action: the next token's state
    # the bootstrap sits in the discounts: 0 after the terminated end, gamma after the truncated one
    ends = [s + len(e.samples[-1].action_ids) - 1 for e in episodes for s in e.starts[-1:]]
    assert float(batch["discounts"][0, ends[0]]) == 0.0
    assert float(batch["discounts"][1, ends[1]]) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("algo", "options"),
    [
        (bc, {}),
        (mc_returns, {}),
        (mc_returns, {"truncation": "bootstrap"}),
        (ilql, {}),
        (ilql, {"backup": "action"}),
    ],
    ids=["bc", "mc", "mc-bootstrapped", "ilql", "ilql-action-backup"],
)
def test_every_offline_loss_is_the_same_on_packed_episodes_as_on_turns(tiny, algo, options) -> None:
    model, tokenizer = tiny
    samples = [s for episode in maze_po_samples(tokenizer) for s in episode]
    packed = pack_dataset(samples)
    assert packed is not None and len(packed) == 3
    heads = algo.make_heads(model, {})
    if heads is not None:  # values far from zero, so a misplaced next state shows
        torch.manual_seed(0)
        for layer in heads.modules():
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.3)
                nn.init.normal_(layer.bias, std=0.3)
    settings = {"tau": 0.7, "cql_weight": 0.01, **options}
    with torch.no_grad():
        per_turn, turn_metrics = algo.loss(model, heads, collate(samples, tokenizer.pad_token_id), settings)
        whole, packed_metrics = algo.loss(
            model, heads, collate_packed(packed, tokenizer.pad_token_id), settings
        )
    assert float(whole) == pytest.approx(float(per_turn), rel=1e-4)
    for name, value in turn_metrics.items():
        assert packed_metrics[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
