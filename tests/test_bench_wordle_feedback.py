"""``bench/wordle_feedback.py``: its references are the exact likelihoods they claim, and its split of a
checkpoint's loss into first and later guesses covers exactly the action tokens."""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import lmrl

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import wordle_feedback  # noqa: E402


def test_the_behaviour_reference_is_the_policys_own_likelihood() -> None:
    from lmrl.tasks.wordle import BEHAVIOR_SMART_P, feedback, load_vocab

    vocab = load_vocab()
    episode = lmrl.play("wordle", "scripted/behavior", seed=3)
    assert len(episode.turns) >= 3
    floor, behaviour = wordle_feedback.references([episode], tokens_per_guess=6)
    assert floor == pytest.approx(math.log(len(vocab)) / 6)
    # A later guess inconsistent with the first one's feedback: only the random branch draws it.
    first = episode.turns[0].info
    inconsistent = next(w for w in vocab if feedback(first["guess"], w) != first["feedback"])
    two = replace(episode, turns=[episode.turns[0], replace(episode.turns[1], info={"guess": inconsistent})])
    _, alone = wordle_feedback.references([two], tokens_per_guess=6)
    assert alone == pytest.approx(-math.log((1 - BEHAVIOR_SMART_P) / len(vocab)) / 6)
    # The secret itself is always consistent: likelier than the floor.
    secret = episode.info["secret"]
    solved = replace(episode, turns=[episode.turns[0], replace(episode.turns[1], info={"guess": secret})])
    assert wordle_feedback.references([solved], tokens_per_guess=6)[1] < floor


def test_the_split_covers_every_action_token_once(tmp_path) -> None:
    import torch

    from lmrl.finetune import models
    from lmrl.finetune.common import bc_loss, forward
    from lmrl.finetune.data import collate_packed, dataset_samples, pack_dataset

    run = tmp_path / "episodes"
    lmrl.run("wordle", "scripted/behavior", episodes=6, out=run)
    episodes = lmrl.load_run(run)
    checkpoint = models.prepare_base("tiny-rope", "wordle", tmp_path / "base", seed=0)
    first, later = wordle_feedback.split_nats(checkpoint, episodes)

    model, tokenizer = models.load(checkpoint, None)
    model.eval()
    packed = pack_dataset(dataset_samples(episodes, tokenizer, max_length=256))
    counts = [sum(len(s.action_ids) for p in packed for s in p.samples if (s.turn > 0) == k) for k in (0, 1)]

    with torch.no_grad():
        overall = float(bc_loss(forward(model, collate_packed(packed, tokenizer.pad_token_id))))
    assert (first * counts[0] + later * counts[1]) / sum(counts) == pytest.approx(overall, rel=1e-5)
    assert first != pytest.approx(later)


def test_consistent_shares_count_each_later_guess_once() -> None:
    from lmrl.tasks.wordle import feedback, load_vocab

    vocab = load_vocab()
    episode = lmrl.play("wordle", "scripted/behavior", seed=3)
    first = episode.turns[0].info
    secret = episode.info["secret"]
    fits = replace(episode.turns[1], info={"guess": secret, "feedback": "ggggg"})
    wrong = next(w for w in vocab if feedback(first["guess"], w) != first["feedback"])
    misfit = replace(episode.turns[1], info={"guess": wrong, "feedback": feedback(wrong, secret)})
    invalid = replace(episode.turns[1], info={"guess": "zzzzz", "feedback": ""})
    two = [replace(episode, turns=[episode.turns[0], turn]) for turn in (fits, misfit, invalid, fits)]
    assert wordle_feedback.consistent_shares(two) == [0.5]
    three = replace(episode, turns=[episode.turns[0], misfit, fits])
    assert wordle_feedback.consistent_shares([three, two[0]]) == [0.5, 1.0]


def test_imitation_score_reproduces_the_behaviour_policy_and_rises_with_the_shares(tmp_path) -> None:
    from lmrl.reports.normalize import normalized_score
    from lmrl.tasks.wordle import Wordle

    lmrl.run("wordle", "scripted/behavior", episodes=400, seed=5, out=tmp_path / "behaviour")
    episodes = lmrl.load_run(tmp_path / "behaviour")
    mean = statistics.fmean(e.return_ for e in episodes)
    behaviour = normalized_score(mean, Wordle.anchors.min, Wordle.anchors.avg, Wordle.anchors.max)
    shares = wordle_feedback.consistent_shares(episodes)
    assert shares[0] > 0.34  # a random word fits the first feedback now and then
    assert wordle_feedback.imitation_score(shares, 400, seed=6) == pytest.approx(behaviour, abs=6)
    never, always = (wordle_feedback.imitation_score([p], 400, seed=6) for p in (0.0, 1.0))
    assert never < behaviour - 20 and always > behaviour + 25
    # Consistent only from the third guess on: between never and always.
    assert never < wordle_feedback.imitation_score([0.0, 1.0], 400, seed=6) < always


def test_the_command_prints_both_tables_for_a_checkpoint_and_its_data(tmp_path, monkeypatch, capsys) -> None:
    import json

    from lmrl.finetune import models

    held_out = tmp_path / "held-out"
    lmrl.run("wordle", "scripted/behavior", episodes=30, seed=1000, out=held_out)
    checkpoint = models.prepare_base("tiny-rope", "wordle", tmp_path / "fbc", seed=0)
    (checkpoint / "train_config.json").write_text(json.dumps({"algo": "filtered-bc", "filter": "top:0.3"}))
    lmrl.run("wordle", "scripted/random", episodes=20, seed=1000, out=checkpoint / "eval")  # its "play"
    argv = ["wordle_feedback.py", str(checkpoint), "--held-out", str(held_out), "--simulated", "50"]
    monkeypatch.setattr(sys, "argv", argv)
    wordle_feedback.main()
    lines = capsys.readouterr().out.splitlines()
    nats = next(line for line in lines if line.startswith("fbc "))
    assert nats.split()[1] == "top:0.3" and float(nats.split()[3]) > 0.9  # untrained: at the floor
    played = next(line for line in lines if line.startswith("fbc (eval)")).split()
    shares = [float(cell) for cell in played[2:-1] if cell != "-"]
    assert shares and max(shares) < 0.3  # random words seldom fit the feedback
    kept = next(line for line in lines if line.startswith("held-out, kept by top:0.3")).split()
    assert float(kept[-1]) > float(played[-1])  # the kept demonstrations are more consistent
