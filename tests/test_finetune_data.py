"""Episodes -> training tensors (lmrl.finetune.data): masks, rewards, returns under both discount
conventions, terminated vs truncated, the context budget, filters."""

from __future__ import annotations

import pytest

from lmrl.agents import ScriptedAgent
from lmrl.finetune.data import DatasetError, collate, episode_samples, filter_episodes
from lmrl.models.tiny import build_tiny_model
from lmrl.rollout import episode_history, rollout, run_sync
from lmrl.task import Segment
from lmrl.tasks import make_task
from lmrl.tasks.maze import DISTANCE, START_CELLS


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), arch="gpt2")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def play(task: str, policy: str, index: int, max_turns: int | None = None):
    return run_sync(lambda: rollout(task, ScriptedAgent(policy), 5, index, style="text", max_turns=max_turns))


def three_moves_from_goal() -> int:
    return next(i for i, cell in enumerate(START_CELLS) if DISTANCE[cell] == 3)


def test_turns_become_samples_with_exact_masks_rewards_and_returns(tokenizer) -> None:
    episode = play("maze-fo", "optimal", three_moves_from_goal())
    assert [t.reward for t in episode.turns] == [-1, -1, 0] and episode.terminated
    task = make_task("maze-fo")
    samples = episode_samples(task, episode, tokenizer, gamma=0.5, discount="per_turn")
    assert len(samples) == 3
    for sample, turn in zip(samples, episode.turns, strict=True):
        assert tokenizer.decode(sample.action_ids) == turn.action + "\n"
        # the prompt is what the policy saw: maze-fo's text rendering shows the latest observation only
        assert tokenizer.decode(sample.prompt_ids) == task.render(
            [Segment("observation", turn.observation)], "text"
        )
    assert [s.returns[0] for s in samples] == [-1.5, -1.0, 0.0]  # G_t = r_t + 0.5 G_{t+1}
    assert all(len(set(s.returns)) == 1 for s in samples)  # per turn: one return for the action
    assert [s.discounts[-1] for s in samples] == [0.5, 0.5, 0.5] and samples[0].discounts[0] == 1.0
    assert [s.bootstrap for s in samples] == [1.0, 1.0, 0.0]  # terminated: no bootstrap at the end
    assert tokenizer.decode(samples[-1].next_ids).endswith("Success\n")

    tokens = episode_samples(task, episode, tokenizer, gamma=0.5, discount="per_token")
    n = [len(s.action_ids) for s in tokens]
    # last token of turn 1 gets r_1 + gamma * (return at the first token of turn 2 = 0.5^(n2-1) * 0)
    assert tokens[1].returns[-1] == -1.0
    first_of_1 = 0.5 ** (n[1] - 1) * -1.0
    assert tokens[0].returns[-1] == pytest.approx(-1.0 + 0.5 * first_of_1)
    assert tokens[0].returns[0] == pytest.approx(0.5 ** (n[0] - 1) * tokens[0].returns[-1])
    assert all(d == 0.5 for s in tokens for d in s.discounts)


def test_a_truncated_end_bootstraps(tokenizer) -> None:
    episode = play("maze-fo", "random", 0, max_turns=2)
    assert episode.truncated and not episode.terminated
    samples = episode_samples(make_task("maze-fo"), episode, tokenizer)
    assert [s.bootstrap for s in samples] == [1.0, 1.0]
    assert samples[-1].returns[0] == pytest.approx(-1.0)  # Monte Carlo: only the rewards observed


@pytest.mark.parametrize("discount", ["per_turn", "per_token"])
def test_tails_discount_the_state_a_truncated_episode_was_cut_in(tokenizer, discount) -> None:
    """A bootstrapped MC return adds tail * V(end state): the tail is the discount from each action
    token to the end (the return a unit reward right after the end would give), and 0 after a
    terminated end; every sample of an episode names the same end state, its final rendering."""
    task = make_task("maze-fo")
    cut_episode = play("maze-fo", "random", 0, max_turns=2)
    cut = episode_samples(task, cut_episode, tokenizer, gamma=0.5, discount=discount)
    done_episode = play("maze-fo", "optimal", three_moves_from_goal())
    done = episode_samples(task, done_episode, tokenizer, discount=discount)
    n = [len(s.action_ids) for s in cut]
    if discount == "per_turn":  # turn 1: gamma to the end; turn 0: gamma^2; the same on every token
        assert cut[1].tails == [0.5] * n[1] and cut[0].tails == [0.25] * n[0]
    else:  # every token-to-token step is a discount: token k of turn 1 is n1 - k steps from the end
        assert cut[1].tails == pytest.approx([0.5 ** (n[1] - k) for k in range(n[1])])
        assert cut[0].tails == pytest.approx([0.5 ** (n[0] + n[1] - k) for k in range(n[0])])
    assert all(t == 0.0 for s in done for t in s.tails)
    for samples in (cut, done):
        assert all(s.end_ids == samples[-1].next_ids for s in samples)
    batch = collate([*cut, done[0]], tokenizer.pad_token_id)
    mask = batch["action_mask"].bool()
    assert batch["tails"][mask].tolist() == pytest.approx([*cut[0].tails, *cut[1].tails, *done[0].tails])
    end_last = batch["end_last"].tolist()
    for row, sample in enumerate([*cut, done[0]]):
        assert batch["end_ids"][row, : end_last[row] + 1].tolist() == sample.end_ids


def test_the_context_budget_drops_whole_old_turns(tokenizer) -> None:
    episode = play("maze-po", "random", 3, max_turns=12)
    task = make_task("maze-po")
    full = episode_samples(task, episode, tokenizer, max_length=4096)
    tight = episode_samples(task, episode, tokenizer, max_length=60)
    assert not any(s.truncated_prompt for s in full)
    late = tight[-1]
    assert late.truncated_prompt and len(late.prompt_ids) + len(late.action_ids) <= 60
    # what is left is the end of the full prompt, cut at a turn boundary (an observation starts it)
    text = tokenizer.decode(late.prompt_ids)
    assert tokenizer.decode(full[-1].prompt_ids).endswith(text)
    assert text.startswith("There") or text.startswith("Questions")
    assert late.action_ids == full[-1].action_ids


def test_collate_lines_up_every_field(tokenizer) -> None:
    episode = play("maze-fo", "optimal", three_moves_from_goal())
    samples = episode_samples(make_task("maze-fo"), episode, tokenizer, gamma=0.5)
    batch = collate(samples, tokenizer.pad_token_id)
    lengths = [len(s.prompt_ids) + len(s.action_ids) for s in samples]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["action_mask"].sum(dim=1).tolist() == [len(s.action_ids) for s in samples]
    assert batch["last_action"].tolist() == [n - 1 for n in lengths]
    rows = range(3)
    assert [float(batch["rewards"][i, batch["last_action"][i]]) for i in rows] == [-1.0, -1.0, 0.0]
    assert float(batch["rewards"].sum()) == -2.0
    assert batch["next_last"].tolist() == [len(s.next_ids) - 1 for s in samples]
    assert batch["bootstrap"].tolist() == [1.0, 1.0, 0.0]


def test_filters_keep_successes_or_the_top_fraction() -> None:
    episodes = [play("maze-fo", "behavior", i) for i in range(25)]  # only goal-sub-maze starts succeed
    wins = filter_episodes(episodes, success_only=True)
    assert wins and all(e.success for e in wins)
    top = filter_episodes(episodes, top_fraction=0.3)
    threshold = sorted((e.return_ for e in episodes), reverse=True)[round(0.3 * 25) - 1]  # the 8th best
    assert len(top) >= 8 and all(e.return_ >= threshold for e in top)
    assert all(e in top for e in episodes if e.return_ >= threshold)
    with pytest.raises(DatasetError):
        filter_episodes([e for e in episodes if not e.success], success_only=True)


def test_chat_samples_go_through_the_template_exactly(tokenizer) -> None:
    episode = play("maze-fo", "optimal", three_moves_from_goal())
    task = make_task("maze-fo")
    samples = episode_samples(task, episode, tokenizer, style="chat")
    history = episode_history(task, episode)
    for t, sample in enumerate(samples):
        messages = task.render(history[: 2 * t + 1], "chat")
        reply = {"role": "assistant", "content": episode.turns[t].raw_output}
        full = tokenizer.apply_chat_template([*messages, reply], tokenize=True, return_dict=False)
        assert sample.prompt_ids + sample.action_ids == list(full)  # the template's own tokens, split
        assert tokenizer.decode(sample.action_ids).startswith(episode.turns[t].raw_output)


def test_a_template_that_rewrites_the_prompt_is_a_one_line_error(tokenizer) -> None:
    import copy

    odd = copy.deepcopy(tokenizer)
    # marks the last user message: the prompt is then not a prefix of the conversation with the reply
    odd.chat_template = (
        "{% for m in messages %}{% if loop.last and m['role'] == 'user' %}<|user|>LAST {{ m['content'] }}"
        "{% else %}<|{{ m['role'] }}|>{{ m['content'] }}{% endif %}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    episode = play("maze-fo", "optimal", three_moves_from_goal())
    with pytest.raises(DatasetError, match="not prefix-preserving"):
        episode_samples(make_task("maze-fo"), episode, odd, style="chat")
