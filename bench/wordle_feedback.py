"""Has a checkpoint learnt to read Wordle's feedback? Nats per action token on held-out episodes, on
the first guess (nothing to read yet) and on the later ones, beside two references computed exactly:
a model that knows only the vocabulary (a uniform word: log |vocab| over the tokens of a guess), and
the behaviour policy itself (a third of its guesses drawn from the words consistent with the feedback).
A model below the vocabulary-only floor on later guesses reads the feedback; one at the floor does not.

    python bench/wordle_feedback.py bench/results/learning/wordle/filtered-bc-tiny-rope-s0 ...

The held-out episodes are the learning bench's behaviour evaluation (run seed 1000, never trained on),
kept by the filter the checkpoint was trained with (its ``train_config.json``), so that each model is
scored on data like its own.

The second table reads the play instead: the share of each guess after the first that is consistent
with all the feedback before it, in the checkpoint's evaluation episodes (``CHECKPOINT/eval``, written
by the learning bench, or the run ``--played`` names) and in the held-out episodes its filter keeps,
and the normalized score of a policy with those shares guess by guess (a random consistent word, else
a random inconsistent one; simulated). For the data's shares that score is about what an exact
imitation would reach (it keeps the shares, not which word: the behaviour data's shares give the
behaviour policy's own score).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

HELD_OUT = Path("bench/results/learning/wordle/behavior-eval")


def split_nats(checkpoint: Path, episodes: list) -> tuple[float, float]:
    """(first-guess, later-guess) mean negative log-likelihood per action token of ``episodes``."""
    import torch

    from lmrl.finetune import models
    from lmrl.finetune.common import forward
    from lmrl.finetune.data import collate_packed, dataset_samples, pack_dataset

    model, tokenizer = models.load(checkpoint, None)
    model.eval()
    packed = pack_dataset(dataset_samples(episodes, tokenizer, max_length=256))
    if packed is None:
        raise SystemExit("wordle_feedback: the episodes do not pack (a prompt was cut)")
    sums, counts = [0.0, 0.0], [0, 0]
    with torch.no_grad():
        for i in range(0, len(packed), 64):
            chunk = packed[i : i + 64]
            out = forward(model, collate_packed(chunk, tokenizer.pad_token_id))
            nll = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), out.targets, reduction="none")
            for row, episode in enumerate(chunk):
                for turn, (sample, start) in enumerate(zip(episode.samples, episode.starts, strict=True)):
                    # token j is predicted at position j - 1
                    tokens = nll[row, start - 1 : start - 1 + len(sample.action_ids)]
                    sums[turn > 0] += float(tokens.sum())
                    counts[turn > 0] += len(sample.action_ids)
    return sums[0] / counts[0], sums[1] / counts[1]


def _guesses(episode) -> Iterator[tuple[int, str | None, str, list[tuple[str, str]]]]:
    """(index, word, feedback, the valid (guess, feedback) clues before it) of each guess of
    ``episode``; an invalid guess has empty feedback."""
    clues: list[tuple[str, str]] = []
    for index, turn in enumerate(episode.turns):
        word, fb = turn.info.get("guess"), turn.info.get("feedback") or ""
        yield index, word, fb, list(clues)
        if word and fb:
            clues.append((word, fb))


def references(episodes: list, tokens_per_guess: int) -> tuple[float, float]:
    """(vocabulary-only floor, behaviour policy) nats per action token on the later guesses."""
    from lmrl.tasks.wordle import BEHAVIOR_SMART_P, consistent, load_vocab

    vocab = load_vocab()
    total, guesses = 0.0, 0
    for episode in episodes:
        for _, word, _, clues in _guesses(episode):
            if clues and word:
                candidates = [w for w in vocab if consistent(w, clues)]
                p = (1 - BEHAVIOR_SMART_P) / len(vocab)
                p += BEHAVIOR_SMART_P / len(candidates) if word in candidates else 0.0
                total -= math.log(p)
                guesses += 1
    return math.log(len(vocab)) / tokens_per_guess, total / guesses / tokens_per_guess


def consistent_shares(episodes: list) -> list[float]:
    """Per guess after the first (second guess first), the share consistent with all the feedback
    before it; a guess that is not a vocabulary word counts as inconsistent. Stops at the first guess
    index no episode reached."""
    from lmrl.tasks.wordle import consistent

    hits: list[list[bool]] = []
    for episode in episodes:
        for index, word, fb, clues in _guesses(episode):
            if index > 0:
                if len(hits) < index:
                    hits.append([])
                hits[index - 1].append(bool(fb) and consistent(word, clues))
    return [statistics.fmean(h) for h in hits]


def imitation_score(shares: list[float], episodes: int = 4000, seed: int = 0) -> float:
    """The normalized score of a policy whose first guess is a random vocabulary word and whose guess k
    is a random word consistent with the feedback with probability ``shares[k - 1]`` (the last share
    beyond them), else a random inconsistent one: a policy whose consistent shares are ``shares``,
    over ``episodes`` simulated games."""
    from lmrl.reports.normalize import normalized_score
    from lmrl.tasks.wordle import Wordle

    rng = random.Random(seed)
    task = Wordle()
    task.rng = random.Random(seed + 1)
    returns = []
    for index in range(episodes):
        task.setup(index)
        total, turn = 0.0, 0
        while not task.done:
            share = shares[min(turn, len(shares)) - 1] if turn and shares else None
            fits = set(task.candidates)
            misfits = [word for word in task.vocab if word not in fits]
            if share is None or not misfits:
                word = rng.choice(task.vocab)
            else:
                word = rng.choice(task.candidates if rng.random() < share else misfits)
            total += task.step(word).reward
            turn += 1
        returns.append(total)
    anchors = Wordle.anchors
    return normalized_score(statistics.fmean(returns), anchors.min, anchors.avg, anchors.max)


def _filter_rule(checkpoint: Path) -> str | None:
    """The filter a filtered-BC checkpoint was trained with (its ``train_config.json``), else None."""
    config = json.loads((checkpoint / "train_config.json").read_text())
    return config.get("filter") if config["algo"] == "filtered-bc" else None


def _kept(episodes: list, rule: str | None) -> list:
    """``episodes`` kept by a filtered-BC rule (``success``, ``top:F``); all of them without one."""
    from lmrl.finetune.data import filter_episodes, top_fraction_of

    top = top_fraction_of(rule) if rule else None
    return filter_episodes(episodes, success_only=rule == "success", top_fraction=top)


def _shares_row(name: str, episodes: list, width: int, simulated: int) -> str:
    from lmrl.tasks.wordle import MAX_GUESSES

    shares = consistent_shares(episodes)
    cells = " ".join(f"{share:5.2f}" for share in shares) + "      -" * (MAX_GUESSES - 1 - len(shares))
    return f"{name:{width}} {cells} {imitation_score(shares, simulated):9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--held-out", type=Path, default=HELD_OUT, help=f"a Wordle run ({HELD_OUT})")
    parser.add_argument(
        "--played",
        default="eval",
        help="the run under each checkpoint whose guesses the second table reads (eval: the bench's)",
    )
    parser.add_argument(
        "--simulated", type=int, default=4000, help="games simulated for each policy's score (4000)"
    )
    args = parser.parse_args()
    import lmrl
    from lmrl.tasks.wordle import MAX_GUESSES

    if not (args.held_out / "episodes.jsonl").exists():
        sys.exit(f"wordle_feedback: {args.held_out} is not a run (python bench/learning.py --tasks wordle)")
    everything = lmrl.load_run(args.held_out)
    names = max([len(checkpoint.name) for checkpoint in args.checkpoints] + [32])
    print(f"{'checkpoint':{names}} {'filter':9} {'first':>6} {'later':>6} {'floor':>6} {'behaviour':>9}")
    rules = {checkpoint: _filter_rule(checkpoint) for checkpoint in args.checkpoints}
    for checkpoint, rule in rules.items():
        episodes = _kept(everything, rule)
        first, later = split_nats(checkpoint, episodes)
        floor, behaviour = references(episodes, tokens_per_guess=6)  # 5 letters and the newline
        row = f"{first:6.3f} {later:6.3f} {floor:6.3f} {behaviour:9.3f}"
        print(f"{checkpoint.name:{names}} {rule or 'none':9} {row}")
    rows = [(f"{c.name} ({args.played})", c / args.played) for c in args.checkpoints]
    rows = [(name, run) for name, run in rows if (run / "episodes.jsonl").exists()]
    width = max([len(name) for name, _ in rows] + [40])
    print("\nguesses consistent with the feedback before them (share by guess) -> the score of a policy")
    guesses = " ".join(f"{guess:>5}" for guess in range(2, MAX_GUESSES + 1))
    print(f"{'played by / data':{width}} {guesses} {'its score':>9}")
    for name, run in rows:
        print(_shares_row(name, lmrl.load_run(run), width, args.simulated))
    print(_shares_row("held-out behaviour episodes", everything, width, args.simulated))
    for rule in sorted(set(rules.values()) - {None}):
        print(_shares_row(f"held-out, kept by {rule}", _kept(everything, rule), width, args.simulated))


if __name__ == "__main__":
    main()
