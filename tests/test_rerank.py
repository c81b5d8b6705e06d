"""The re-ranker (``--local-option rerank=true``): a value-guided local agent picks among the task's
candidate actions (maze's four moves) by BC likelihood + beta * value, instead of generating."""

from __future__ import annotations

import random

import anyio
import pytest
import torch
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


def test_one_batched_forward_scores_like_one_request_at_a_time(tiny_dir, tmp_path) -> None:  # noqa: F811
    # Concurrent episodes share one forward (right-padded rows of different lengths): every request's
    # choice and log-probabilities must be what it gets alone.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmrl.finetune.guidance import RankRequest, load_guidance, rank_batch

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    right_last = tokenizer("move right\n", add_special_tokens=False)["input_ids"][-2]
    path = with_heads(
        tiny_dir, tmp_path / "ilql", favouring(right_last, value=True), beta=0.5, extraction="advantage"
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    guidance, _ = load_guidance(path, model)
    moves = [tokenizer(f"{m}\n", add_special_tokens=False)["input_ids"] for m in ("move up", "move right")]
    prompts = [tokenizer(maze_prompt(i, "text").text)["input_ids"] for i in (0, 7, 24)]
    prompts.append(prompts[0][:-3])  # a shorter row: padding must not change its scores
    requests = [RankRequest(p, moves, 0.0, random.Random(0)) for p in prompts]
    together = rank_batch(model, requests, guidance)
    for request, (best, logprobs) in zip(requests, together, strict=True):
        alone_best, alone_logprobs = rank_actions(model, request.prompt_ids, moves, guidance, 0.0, None)
        assert best == alone_best
        assert logprobs == pytest.approx(alone_logprobs, abs=1e-5)


def test_concurrent_episodes_rank_in_shared_batches(tiny_dir) -> None:  # noqa: F811
    player = agent(tiny_dir)
    batch_sizes: list[int] = []
    from lmrl.finetune import guidance as guidance_module

    original = guidance_module.rank_batch

    def counting(model, requests, guidance, prefix_store=None):
        batch_sizes.append(len(requests))
        return original(model, requests, guidance, prefix_store)

    async def play() -> list:
        guidance_module.rank_batch = counting
        try:
            results: list = [None] * 16
            async with anyio.create_task_group() as group:
                for i in range(16):

                    async def one(i: int = i) -> None:
                        results[i] = await player.act(maze_prompt(i, "text"))

                    group.start_soon(one)
            return results
        finally:
            guidance_module.rank_batch = original
            await player.aclose()

    completions = anyio.run(play)
    assert all(c.text.startswith("move ") for c in completions)
    assert sum(batch_sizes) == 16 and max(batch_sizes) > 1  # some requests shared a forward


@pytest.mark.parametrize(
    ("chunked", "reuse"),
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["one-forward", "chunks-of-3-rows", "earlier-turns-reused", "reused-and-chunked"],
)
def test_candidates_of_different_lengths_score_as_full_forwards_do(
    tiny_dir,  # noqa: F811
    tmp_path,
    monkeypatch,
    chunked,
    reuse,
) -> None:
    # Each prompt is encoded once and its candidates continue its cache: the scores must be those of
    # one full forward per candidate, for candidates of 1 to 4 tokens and prompts of unequal lengths.
    import torch
    from test_value_heads import random_heads
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmrl.finetune import guidance as module
    from lmrl.finetune.guidance import RankRequest, candidate_values, load_guidance, rank_batch

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    if chunked:  # 3 rows of 4 tokens per forward: the 8 candidates go in 3 chunks, one split mid-request
        monkeypatch.setattr(module, "RANK_CHUNK_VALUES", 3 * 4 * len(tokenizer))
    path = with_heads(
        tiny_dir, tmp_path / "ilql", random_heads(double_q=True, value=True), beta=0.5, extraction="advantage"
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    guidance, _ = load_guidance(path, model)
    candidates = [[17], [5, 9], [30, 31, 32], [7, 8, 9, 10]]
    prompts = [tokenizer(maze_prompt(i, "text").text)["input_ids"] for i in (1, 5)]
    requests = [RankRequest(p, candidates, 0.0, None) for p in prompts]
    store = None
    if reuse:  # the previous turn's prompts (shorter) are stored first; these continue them
        from lmrl.agents.prefix_store import PrefixStore

        store = PrefixStore(2**26, min_tokens=4, block=4)
        rank_batch(model, [RankRequest(p[:-6], candidates, 0.0, None) for p in prompts], guidance, store)
        assert store.stats.stored == 2
    ranked = rank_batch(model, requests, guidance, store)
    if reuse:
        assert store.stats.tokens_reused >= 2 * (min(map(len, prompts)) - 8)
    diagnosed = candidate_values(model, requests, guidance)  # the values alone, as the diagnostics read them
    for request, (best, logprobs), shown in zip(requests, ranked, diagnosed, strict=True):
        scores, per_token, values = [], [], []
        for candidate in candidates:
            with torch.no_grad():
                out = model(torch.tensor([request.prompt_ids + candidate]), output_hidden_states=True)
            at = range(len(request.prompt_ids) - 1, len(request.prompt_ids) - 1 + len(candidate))
            lp = [float(out.logits[0, j].log_softmax(-1)[t]) for j, t in zip(at, candidate, strict=True)]
            with torch.no_grad():
                bonus = guidance.bonus(out.hidden_states[-1][0, list(at)])
            value = sum(float(bonus[k, t]) for k, t in enumerate(candidate))
            scores.append(sum(lp) + 0.5 * value)
            per_token.append(lp)
            values.append(value)
        assert best == max(range(len(candidates)), key=scores.__getitem__)
        assert shown == pytest.approx(values, abs=1e-4)
        assert logprobs == pytest.approx(per_token[best], abs=1e-4)


def test_wordle_reranks_over_its_vocabulary(tiny_dir) -> None:  # noqa: F811
    # An untrained model cannot spell; re-ranked, every guess is a vocabulary word (its own candidate
    # set), so the episode runs its six guesses with no invalid reply.
    from lmrl.rollout import rollout, run_sync
    from lmrl.tasks import make_task

    wordle = make_task("wordle")
    assert wordle.candidate_actions() == list(wordle.vocab) and len(wordle.vocab) == 400
    player = LocalAgent(
        f"local/{tiny_dir}", AgentOptions(temperature=1.0, extra={"rerank": True}), style="text"
    )
    try:
        episode = run_sync(lambda: rollout("wordle", player, 3, 0, style="text"))
    finally:
        anyio.run(player.aclose)
    guesses = [turn.action for turn in episode.turns]
    assert guesses and not any(turn.invalid for turn in episode.turns)
    assert set(guesses) <= set(wordle.vocab) and len(set(guesses)) > 1


def test_an_episode_reranks_the_same_with_and_without_reused_prefixes(tiny_dir) -> None:  # noqa: F811
    # maze-po's prompt grows every turn: with prefixes shared, each turn continues the previous one's
    # key/value states instead of re-encoding the history; the choices must not change.
    from lmrl.rollout import rollout, run_sync

    def play(share: bool) -> list[str]:
        options = AgentOptions(temperature=0, extra={"rerank": True, "share_prefixes": share})
        player = LocalAgent(f"local/{tiny_dir}", options, style="text")
        try:
            episode = run_sync(lambda: rollout("maze-po", player, 1, 3, style="text", max_turns=24))
            store = player._ranker.prefix_store()
            assert (store is not None) == share
            if share:
                assert store.stats.tokens_reused > store.stats.tokens_looked_up / 2
        finally:
            anyio.run(player.aclose)
        return [turn.action for turn in episode.turns]

    assert play(True) == play(False)


def test_textnav_reranks_over_the_admissible_commands(tiny_dir) -> None:  # noqa: F811
    # Text-Nav's candidates change with the state: each turn the re-ranked agent says one of the
    # commands its observation lists, so an untrained model plays a whole episode with no invalid reply.
    from lmrl.rollout import rollout, run_sync
    from lmrl.tasks import make_task

    task = make_task("textnav-po")
    task.reset(0)
    before = task.candidate_actions()
    move = next(c for c in before if c.startswith("go "))
    task.step(move)
    assert task.candidate_actions() == task.admissible_commands() != before
    player = LocalAgent(
        f"local/{tiny_dir}", AgentOptions(temperature=1.0, extra={"rerank": True}), style="text"
    )
    try:
        episode = run_sync(lambda: rollout("textnav-po", player, 5, 0, style="text", max_turns=12))
    finally:
        anyio.run(player.aclose)
    assert len(episode.turns) > 1 and not any(turn.invalid for turn in episode.turns)
    assert len({turn.action for turn in episode.turns}) > 1


def test_endgames_rerank_over_the_legal_moves(tiny_dir) -> None:  # noqa: F811
    # Chess candidates are the legal moves in SAN, following the board: an untrained model re-ranked
    # plays against the real engine and never makes an illegal move (generating, it rarely makes a
    # legal one).
    import chess

    from lmrl.rollout import rollout, run_sync
    from lmrl.tasks import make_task

    task = make_task("endgames", positions="random", opponent_depth=1)
    task.reset(3)
    legal = task.candidate_actions()
    assert legal == sorted(task.board.san(m) for m in task.board.legal_moves) and len(legal) > 5
    player = LocalAgent(
        f"local/{tiny_dir}", AgentOptions(temperature=1.0, extra={"rerank": True}), style="text"
    )
    try:
        episode = run_sync(lambda: rollout(task, player, 7, 0, style="text", max_turns=6))
    finally:
        anyio.run(player.aclose)
        anyio.run(task.aclose)
    assert len(episode.turns) > 1 and not any(turn.invalid for turn in episode.turns)
    board = chess.Board(episode.info["start_fen"])
    assert episode.turns[0].action in {board.san(m) for m in board.legal_moves}


# --- proposals: the re-ranker over what the BC policy itself proposes --------------------------------
def proposing(path, **extra) -> LocalAgent:
    options = AgentOptions(temperature=0, max_tokens=8, extra={"proposals": 8, **extra})
    return LocalAgent(f"local/{path}", options, style="text")


def play(player: LocalAgent, prompts: list[Prompt]) -> list:
    async def each() -> list:
        try:
            return [await player.act(p) for p in prompts]
        finally:
            await player.aclose()

    return anyio.run(each)


def test_proposals_pick_the_valued_action_among_the_policys_own(maze_policy, tmp_path) -> None:
    """A BC maze policy proposes moves; heads that value "right" make the agent say "move right"
    wherever it was proposed, and plain BC (beta 0) says the proposal it finds likeliest."""
    import json

    from transformers import AutoTokenizer

    from lmrl.finetune.heads import ValueHeads

    tokenizer = AutoTokenizer.from_pretrained(maze_policy)
    right = tokenizer("move right\n", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(right[-2:-1]).strip() == "right"
    config = json.loads((maze_policy / "config.json").read_text())
    heads = ValueHeads(config["n_embd"], config["vocab_size"], value=True)
    with torch.no_grad():
        for layer in (heads.q1, heads.v):
            layer.weight.zero_()
            layer.bias.zero_()
        heads.q1.bias[right[-2]] = 1.0  # Q 1 for "right", 0 elsewhere; V 0
    path = with_heads(maze_policy, tmp_path / "mc", heads, beta=1000.0, extraction="advantage")
    prompts = [maze_prompt(i, "text") for i in range(8)]
    guided, plain = play(proposing(path), prompts), play(proposing(path, beta=0), prompts)
    moves = ("move up", "move down", "move left", "move right")
    assert all(c.text in moves for c in guided + plain)
    for completion in guided + plain:
        assert tokenizer.decode(completion.token_ids) == completion.text + "\n"
        assert len(completion.logprobs) == len(completion.token_ids)
    # The same seeds give both agents the same proposals: where BC's likeliest is not "right" but
    # "right" was proposed, only the valued agent says it.
    said_right = [c.text == "move right" for c in guided]
    assert all(g or not p for g, p in zip(said_right, [c.text == "move right" for c in plain], strict=True))
    assert sum(said_right) > sum(c.text == "move right" for c in plain)


def test_proposals_that_name_no_action_say_the_first_reply(tiny_dir) -> None:  # noqa: F811
    from lmrl.parsing import Invalid

    prompts = [maze_prompt(i, "text") for i in range(3)]
    said = play(proposing(tiny_dir, proposals=4), prompts)  # an untrained model: no move in its noise
    for prompt, completion in zip(prompts, said, strict=True):
        assert isinstance(prompt.task.parse(completion.text), Invalid)
        assert completion.token_ids and len(completion.logprobs) == len(completion.token_ids)
    # The first reply, as a plain sampled agent seeded the same way would have said it.
    first = play(LocalAgent(f"local/{tiny_dir}", AgentOptions(temperature=1.0, max_tokens=8), style="text"),
                 [maze_prompt(i, "text") for i in range(3)])  # fmt: skip
    assert [c.text for c in said] == [c.text for c in first]


@pytest.mark.parametrize("value", [-1, 2.5, "many"])
def test_the_proposals_option_is_checked(value, tiny_dir) -> None:  # noqa: F811
    from lmrl.agents import AgentConfigError, make_agent

    with pytest.raises(AgentConfigError, match="proposals must be an integer >= 0"):
        make_agent(f"local/{tiny_dir}", AgentOptions(extra={"proposals": value}))
