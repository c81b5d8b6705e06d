"""Has a checkpoint learnt to read Wordle's feedback? Nats per action token on held-out episodes, on
the first guess (nothing to read yet) and on the later ones, beside two references computed exactly:
a model that knows only the vocabulary (a uniform word: log |vocab| over the tokens of a guess), and
the behaviour policy itself (a third of its guesses drawn from the words consistent with the feedback).
A model below the vocabulary-only floor on later guesses reads the feedback; one at the floor does not.

    python bench/wordle_feedback.py bench/results/learning/wordle/filtered-bc-tiny-rope-s0 ...

The held-out episodes are the learning bench's behaviour evaluation (run seed 1000, never trained on),
kept by the filter the checkpoint was trained with (its ``train_config.json``), so that each model is
scored on data like its own.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
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


def references(episodes: list, tokens_per_guess: int) -> tuple[float, float]:
    """(vocabulary-only floor, behaviour policy) nats per action token on the later guesses."""
    from lmrl.tasks.wordle import BEHAVIOR_SMART_P, consistent, load_vocab

    vocab = load_vocab()
    total, guesses = 0.0, 0
    for episode in episodes:
        clues: list[tuple[str, str]] = []
        for turn in episode.turns:
            word, fb = turn.info.get("guess"), turn.info.get("feedback")
            if clues and word:
                candidates = [w for w in vocab if consistent(w, clues)]
                p = (1 - BEHAVIOR_SMART_P) / len(vocab)
                p += BEHAVIOR_SMART_P / len(candidates) if word in candidates else 0.0
                total -= math.log(p)
                guesses += 1
            if word and fb:
                clues.append((word, fb))
    return math.log(len(vocab)) / tokens_per_guess, total / guesses / tokens_per_guess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--held-out", type=Path, default=HELD_OUT, help=f"a Wordle run ({HELD_OUT})")
    args = parser.parse_args()
    import lmrl
    from lmrl.finetune.data import filter_episodes, top_fraction_of

    if not (args.held_out / "episodes.jsonl").exists():
        sys.exit(f"wordle_feedback: {args.held_out} is not a run (python bench/learning.py --tasks wordle)")
    everything = lmrl.load_run(args.held_out)
    print(f"{'checkpoint':32} {'filter':9} {'first':>6} {'later':>6} {'floor':>6} {'behaviour':>9}")
    for checkpoint in args.checkpoints:
        config = json.loads((checkpoint / "train_config.json").read_text())
        rule = config.get("filter") if config["algo"] == "filtered-bc" else None
        top = top_fraction_of(rule) if rule else None
        episodes = filter_episodes(everything, success_only=rule == "success", top_fraction=top)
        first, later = split_nats(checkpoint, episodes)
        floor, behaviour = references(episodes, tokens_per_guess=6)  # 5 letters and the newline
        row = f"{first:6.3f} {later:6.3f} {floor:6.3f} {behaviour:9.3f}"
        print(f"{checkpoint.name:32} {rule or 'none':9} {row}")


if __name__ == "__main__":
    main()
