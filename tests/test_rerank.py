"""The re-ranker (``--local-option rerank=true``): a value-guided local agent picks among the task's
candidate actions (maze's four moves) by BC likelihood + beta * value, instead of generating."""

from __future__ import annotations

import random

import anyio
import pytest
from test_value_heads import favouring, maze_prompt, tiny_dir, with_heads  # noqa: F401

from lmrl.agents import AgentOptions
from lmrl.agents.local import LocalAgent
from lmrl.finetune.guidance import rank_actions
from lmrl.task import Prompt


def agent(path, **extra) -> LocalAgent:
    return LocalAgent(
        f"local/{path}", AgentOptions(temperature=0, extra={"rerank": True, **extra}), style="text"
    )


def test_the_value_decides_among_the_moves(tiny_dir, tmp_path) -> None:  # noqa: F811
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    right_last = tokenizer("move right\n", add_special_tokens=False)["input_ids"][-2]  # "right", not "\n"
    path = with_heads(tiny_dir, tmp_path / "mc", favouring(right_last), beta=1000.0, extraction="q")

    async def choose(**extra) -> list:
        player = agent(path, **extra)
        try:
            return [await player.act(maze_prompt(i, "text")) for i in range(4)]
        finally:
            await player.aclose()

    plain = anyio.run(lambda: choose(beta=0))
    guided = anyio.run(choose)
    for completion in plain + guided:
        assert completion.text in ("move up", "move down", "move left", "move right")
        assert tokenizer.decode(completion.token_ids) == completion.text + "\n"
        assert len(completion.logprobs) == len(completion.token_ids) and all(
            lp <= 0 for lp in completion.logprobs
        )
    # Q counts the action's last token only ("q"), which is "\n" for every move: the favoured "right"
    # token is not last, so it changes nothing; with the advantage sum over tokens it decides.
    assert [c.text for c in guided] == [c.text for c in plain]
    adv = with_heads(
        tiny_dir, tmp_path / "ilql", favouring(right_last, value=True), beta=1000.0, extraction="advantage"
    )
    player = agent(adv)
    try:
        picked = anyio.run(lambda: player.act(maze_prompt(0, "text")))
    finally:
        anyio.run(player.aclose)
    assert picked.text == "move right"


def test_greedy_bc_reranking_is_the_most_likely_move(tiny_dir) -> None:  # noqa: F811
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    prompt: Prompt = maze_prompt(1, "text")
    prompt_ids = tokenizer(prompt.text)["input_ids"]
    moves = [tokenizer(f"{m}\n", add_special_tokens=False)["input_ids"] for m in ("move up", "move down")]
    best, logprobs = rank_actions(model, prompt_ids, moves, None, 0.0, random.Random(0))
    with torch.no_grad():
        totals = []
        for move in moves:
            ids = torch.tensor([prompt_ids + move])
            logits = model(ids).logits.log_softmax(-1)[0]
            totals.append(sum(float(logits[len(prompt_ids) - 1 + k, t]) for k, t in enumerate(move)))
    assert best == max(range(2), key=totals.__getitem__)
    assert sum(logprobs) == pytest.approx(totals[best], abs=1e-4)
