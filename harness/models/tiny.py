"""Tiny randomly initialised causal LMs with a tokenizer trained on the tasks' own text.

For tests and for from-scratch training recipes: no hub, no download. ``build_tiny_model(out_dir)``
writes a normal ``save_pretrained`` checkpoint (config, weights, generation config, tokenizer with a
chat template), so everything that takes ``local/<dir>`` or ``transformers serve <dir>`` takes it too.

The tokenizer is a byte-level BPE (``tokenizers``) trained on scripted episodes of every registered
task rendered in both styles (system prompts, observations, actions, chat markup), so prompts are
short in tokens and any text still encodes (byte fallback). Same arguments, same files: the corpus
comes from fixed seeds and the weights from ``seed``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<pad>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
EOS, PAD, UNK = "<|end|>", "<pad>", "<unk>"
# A plain chat template: <|role|>\ncontent<|end|>\n per message, then <|assistant|>\n to generate.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


# Pure-Python tasks whose scripted episodes need no engine or partner: the default corpus is the same
# on every machine and does not change when other tasks are added.
CORPUS_TASKS: tuple[str, ...] = ("maze-fo", "maze-po", "wordle")


def task_corpus(
    tasks: tuple[str, ...] = CORPUS_TASKS, episodes_per_task: int = 6, seed: int = 0
) -> list[str]:
    """Text of scripted episodes of ``tasks`` (played by ``rollout``, at most 30 turns), in ``chat``
    and ``text`` form; a task whose episodes fail here (it needs an engine) contributes nothing."""
    from lmrl.agents import ScriptedAgent
    from lmrl.rollout import episode_history, rollout, run_sync
    from lmrl.task import Prompt
    from lmrl.tasks import make_task

    async def play_all() -> list[str]:
        docs: list[str] = []
        for name in tasks:
            for index in range(episodes_per_task):
                task = make_task(name)
                policies = sorted(task.policies)
                if not policies:
                    break
                agent = ScriptedAgent(policies[index % len(policies)])
                episode = await rollout(task, agent, seed * 1000 + index, index, max_turns=30)
                if episode.error is not None:
                    continue
                prompt = Prompt(task, episode_history(task, episode), "chat", random.Random(0))
                docs.append(prompt.text)
                docs.append("".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in prompt.messages))
        return docs

    return run_sync(play_all)


def train_tokenizer(vocab_size: int = 1024, corpus: list[str] | None = None):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with the chat specials and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = task_corpus() if corpus is None else corpus
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token=UNK, pad_token=PAD, eos_token=EOS, padding_side="left"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    arch: Literal["llama", "gpt2"] = "llama",
    vocab_size: int = 1024,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    max_positions: int = 2048,
    seed: int = 0,
    init_std: float = 0.2,
    tasks: tuple[str, ...] = CORPUS_TASKS,
) -> Path:
    """Write a tiny random causal LM and its tokenizer to ``out_dir``; return the directory.

    The tokenizer is trained on scripted episodes of ``tasks``. ``init_std`` is larger than the usual
    0.02 so the untrained model's next-token distribution is peaked rather than flat: greedy decoding
    then has clear winners, and floating-point noise from batching cannot flip an argmax. (About
    0.2 s for the defaults on 2 CPU cores, once torch and transformers are imported.)
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, GPT2Config, LlamaConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(vocab_size, task_corpus(tasks))
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in (EOS, PAD)}
    common = {"vocab_size": len(tokenizer), "bos_token_id": ids[EOS], "eos_token_id": ids[EOS]}
    common["pad_token_id"] = ids[PAD]
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=max_positions,
            tie_word_embeddings=True,
            initializer_range=init_std,
            **common,
        )
    elif arch == "gpt2":
        config = GPT2Config(
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_positions=max_positions,
            initializer_range=init_std,
            **common,
        )
    else:
        raise ValueError(f"arch must be 'llama' or 'gpt2', not {arch!r}")
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[EOS], eos_token_id=ids[EOS], pad_token_id=ids[PAD]
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
