"""Training throughput on a CPU: our BC and ILQL steps against TRL's SFTTrainer doing BC (completion-only
loss) on the same data and the same tiny from-scratch model, measured side by side in one run.

Data: maze-fo behaviour episodes, one sample per turn (prompt = the text rendering the policy sees,
completion = the action and its newline). Tokens/s counts every token of every sequence fed to the
model (prompt and action, no padding), the same way for both.

    python bench/training_throughput.py [--steps 60] [--repeats 2]     (needs `pip install trl`)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401

import lmrl
from lmrl.finetune.data import dataset_samples, load_dataset
from lmrl.finetune.models import load, prepare_base
from lmrl.finetune.trainer import TrainConfig, train


def ours(algo: str, data: Path, base: Path, out: Path, steps: int, batch: int) -> float:
    rates: list[float] = []
    train(
        TrainConfig(
            algo=algo, data=[str(data)], out=out, base=str(base), max_steps=steps, batch_size=batch, lr=3e-4,
            eval_episodes=0, save_every=steps + 1, log_every=steps,
        ),
        progress=False,
        on_log=lambda record: rates.append(record["tokens_per_s"]) if "tokens_per_s" in record else None,
    )  # fmt: skip
    return rates[-1]


def trl_sft(samples: list, base: Path, out: Path, steps: int, batch: int) -> float:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load(base)
    rows = [
        {
            "prompt": tokenizer.decode(s.prompt_ids, skip_special_tokens=False),
            "completion": tokenizer.decode(s.action_ids),
        }
        for s in samples
    ]
    config = SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, learning_rate=3e-4,
        logging_steps=steps, save_strategy="no", report_to="none", completion_only_loss=True,
        use_cpu=True, dataloader_num_workers=0, max_length=256, seed=0,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    lengths = [len(s.prompt_ids) + len(s.action_ids) for s in samples]
    mean_length = statistics.fmean(lengths)
    return steps * batch * mean_length / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        lmrl.run("maze-fo", "scripted/behavior", episodes=200, out=data, concurrency=64)
        base = prepare_base("tiny", "maze-fo", tmp / "base", seed=0)
        _, tokenizer = load(base)
        samples = dataset_samples(load_dataset([data]), tokenizer, max_length=256)
        results: dict[str, list[float]] = {"bc": [], "ilql": [], "trl": []}
        for repeat in range(args.repeats):  # alternate, so the machine's noise hits all three alike
            for name in ("bc", "trl", "ilql"):
                out = tmp / f"{name}-{repeat}"
                if name == "trl":
                    rate = trl_sft(samples, base, out, args.steps, args.batch_size)
                else:
                    rate = ours(name, data, base, out, args.steps, args.batch_size)
                results[name].append(rate)
                shutil.rmtree(out, ignore_errors=True)
                print(f"repeat {repeat}: {name} {rate:,.0f} tokens/s", flush=True)
    bc, trl_rate, ilql = (statistics.median(results[k]) for k in ("bc", "trl", "ilql"))
    ratios = [b / t for b, t in zip(results["bc"], results["trl"], strict=True)]
    print(f"\n{len(samples)} samples, {args.steps} steps of {args.batch_size}, medians of {args.repeats}")
    print("| trainer | tokens/s | ratio |")
    print("|---|---|---|")
    print(f"| lmrl BC | {bc:,.0f} | {statistics.median(ratios):.2f}x TRL (paired median) |")
    print(f"| TRL SFTTrainer (completion-only BC) | {trl_rate:,.0f} | 1.00 |")
    print(f"| lmrl ILQL | {ilql:,.0f} | step time {bc / ilql:.2f}x BC's |")


if __name__ == "__main__":
    main()
