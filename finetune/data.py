"""Logged episodes -> training samples -> token tensors.

Datasets are run directories: ``lmrl run --model scripted/behavior`` writes the paper's offline data
for a task, an API model's run is a dataset too. Every agent turn becomes one sample, rendered the
way the agent saw it at that turn (the task's ``text`` rendering, its window included), so training
sees exactly the contexts the policy will see when the harness plays it:

    prompt   the rendering of the history up to the turn's observation      (not trained on)
    action   what the agent said: the token ids it sampled when the episode logged them (local
             checkpoints), else the action text as the history shows it, plus the newline that ends a
             ``text``-style reply                                         (the action mask)
    next     the rendering after this turn (the next observation; after the last turn, the final
             one): where an ILQL target evaluates V(s')

Prompt and action are tokenized separately (segment by segment, never a joined string), so the action
mask is exact. A prompt longer than the context budget drops its oldest whole turns first.

Rewards and returns. The turn's reward sits on the last token of its action. Two discount
conventions: ``per_turn`` (gamma between turns, 1 inside an action) and ``per_token`` (gamma between
consecutive action tokens, as the paper's token-level code). Monte Carlo returns sum the rewards that
were observed; ``tails`` let MC add V of the state a truncated episode was cut in. Value targets
bootstrap V(next) after a truncated end and never after a terminated one (``bootstrap``: 0 after
termination).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lmrl.episode import Episode
from lmrl.rollout import episode_history
from lmrl.task import Segment, Task
from lmrl.tasks import make_task

Discount = Literal["per_turn", "per_token"]


class DatasetError(ValueError):
    """The data cannot be used as asked (no episodes, tasks mixed, a run missing): one line."""


@dataclass(slots=True)
class Sample:
    """One agent turn of one episode, as token ids."""

    prompt_ids: list[int]
    action_ids: list[int]
    next_ids: list[int]
    reward: float
    returns: list[float]  # return-to-go at each action token (the chosen discount convention)
    discounts: list[float]  # the factor on V(next state) for each action token's target
    bootstrap: float  # 1.0 unless the episode terminated at this turn (then V(next) counts for nothing)
    episode_return: float
    key: str = ""
    turn: int = 0
    truncated_prompt: bool = False  # the prompt lost turns (or tokens) to fit the budget
    info: dict[str, Any] = field(default_factory=dict)
    logprobs: list[float] | None = None  # of each action token, as sampled (local checkpoints' turns)
    # Each action token's factor on V(episode's end state) in a bootstrapped Monte Carlo return: the
    # discount from the token to the end, 0 when the episode terminated (nothing follows its end).
    tails: list[float] = field(default_factory=list)
    end_ids: list[int] = field(default_factory=list)  # the episode's final rendering (where it ended)


# --- datasets ------------------------------------------------------------------------------------
def load_dataset(run_dirs: Sequence[str | Path], allow_mixed: bool = False) -> list[Episode]:
    """The finished episodes of one or more run directories (errored ones left out)."""
    from lmrl.rundir import RunDirError, load_episodes

    episodes: list[Episode] = []
    for run_dir in run_dirs:
        try:
            found = load_episodes(Path(run_dir))
        except (RunDirError, ValueError, KeyError) as error:
            raise DatasetError(str(error)) from None
        episodes += [e for e in found if e.error is None and e.turns]
    if not episodes:
        raise DatasetError(f"no finished episodes in {', '.join(map(str, run_dirs))}")
    tasks = sorted({e.task for e in episodes})
    if len(tasks) > 1 and not allow_mixed:
        raise DatasetError(f"the data mixes tasks ({', '.join(tasks)}); pass --allow-mixed to train on all")
    return episodes


def top_fraction_of(rule: str) -> float | None:
    """A filtered-BC rule's top fraction (``top:0.3`` -> 0.3), None for ``success``; a one-line
    ``DatasetError`` for anything else."""
    if rule == "success":
        return None
    kind, _, fraction = rule.partition(":")
    try:
        top = float(fraction) if kind == "top" else float("nan")
    except ValueError:
        top = float("nan")
    if not 0 < top <= 1:  # NaN fails this too
        raise DatasetError(f"--filter must be success or top:FRACTION in (0, 1], not {rule!r}")
    return top


def filter_episodes(
    episodes: Sequence[Episode], success_only: bool = False, top_fraction: float | None = None
) -> list[Episode]:
    """Filtered BC's data: the successful episodes, or the top ``top_fraction`` by return (per task;
    ties at the threshold kept)."""
    kept = [e for e in episodes if e.success] if success_only else list(episodes)
    if top_fraction is not None:
        if not 0 < top_fraction <= 1:
            raise DatasetError(f"top fraction must be in (0, 1], not {top_fraction}")
        by_task: dict[str, list[Episode]] = {}
        for episode in kept:
            by_task.setdefault(episode.task, []).append(episode)
        kept = []
        for group in by_task.values():
            ranked = sorted((e.return_ for e in group), reverse=True)
            threshold = ranked[max(0, int(round(top_fraction * len(ranked))) - 1)]
            kept += [e for e in group if e.return_ >= threshold]
    if not kept:
        raise DatasetError("the filter kept no episode")
    return kept


# --- samples -------------------------------------------------------------------------------------
def episode_samples(
    task: Task,
    episode: Episode,
    tokenizer: Any,
    *,
    max_length: int = 1024,
    gamma: float = 0.99,
    discount: Discount = "per_turn",
    style: str = "text",
) -> list[Sample]:
    """Every agent turn of ``episode`` (played on a task of ``task``'s class) as a ``Sample``, in the
    ``text`` rendering or (``style="chat"``) through the tokenizer's chat template."""
    task.reset(episode.seed, episode.index)  # the rendering may depend on the episode's start
    history = episode_history(task, episode)
    ends_with_newline = _newline_ids(tokenizer)
    samples: list[Sample] = []
    for t, turn in enumerate(episode.turns):
        upto = history[: 2 * t + 1]  # up to and including the turn's observation
        logprobs = None
        if turn.token_ids:
            action_ids = list(turn.token_ids)
            if turn.logprobs is not None and len(turn.logprobs) == len(action_ids):
                logprobs = list(turn.logprobs)
        elif style == "chat":
            action_ids = _chat_reply_ids(task, upto, history[2 * t + 1], tokenizer, episode.key, t)
        else:
            text = task.format_action(turn.action) if turn.action is not None else turn.raw_output.strip()
            action_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + ends_with_newline
        budget = max(1, max_length - len(action_ids))
        prompt_ids, cut = _fit(task, upto, tokenizer, budget, style)
        next_ids, _ = _fit(task, history[: 2 * t + 3], tokenizer, max_length, style)
        last = t == len(episode.turns) - 1
        samples.append(
            Sample(
                prompt_ids=prompt_ids,
                action_ids=action_ids,
                next_ids=next_ids,
                reward=float(turn.reward),
                returns=[],
                discounts=[],
                bootstrap=0.0 if (last and episode.terminated) or turn.terminated else 1.0,
                episode_return=float(episode.return_),
                key=episode.key,
                turn=t,
                truncated_prompt=cut,
                logprobs=logprobs,
            )
        )
    _fill_returns(samples, gamma, discount)
    for sample in samples:
        sample.end_ids = samples[-1].next_ids  # one list, shared
    return samples


def dataset_samples(
    episodes: Iterable[Episode],
    tokenizer: Any,
    *,
    max_length: int = 1024,
    gamma: float = 0.99,
    discount: Discount = "per_turn",
    task_options: dict[str, dict[str, Any]] | None = None,
    style: str = "text",
) -> list[Sample]:
    samples: list[Sample] = []
    tasks: dict[str, Task] = {}
    for episode in episodes:
        if episode.task not in tasks:
            tasks[episode.task] = make_task(episode.task, **(task_options or {}).get(episode.task, {}))
        samples += episode_samples(
            tasks[episode.task],
            episode,
            tokenizer,
            max_length=max_length,
            gamma=gamma,
            discount=discount,
            style=style,
        )
    return samples


def _newline_ids(tokenizer: Any) -> list[int]:
    """What ends a ``text``-style reply: the tokens of "\\n" (the local agent stops there)."""
    return tokenizer("\n", add_special_tokens=False)["input_ids"]


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=False
    )
    return list(ids)


def _chat_reply_ids(
    task: Task, upto: list[Segment], action: Segment, tokenizer: Any, key: str, turn: int
) -> list[int]:
    """The tokens the chat template adds for the assistant's reply: the conversation with the reply
    minus the prompt. Exact only when the template renders the prompt as a prefix of the longer
    conversation; otherwise a one-line error (train on the ``text`` rendering instead)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DatasetError("--style chat needs a tokenizer with a chat template; this one has none")
    messages = task.render(upto, "chat")
    assert isinstance(messages, list)
    prompt = _chat_ids(tokenizer, messages, generation_prompt=True)
    reply = action.raw if action.raw is not None else action.text
    full = _chat_ids(tokenizer, [*messages, {"role": "assistant", "content": reply}], generation_prompt=False)
    if full[: len(prompt)] != prompt:
        raise DatasetError(
            f"the chat template is not prefix-preserving (episode {key}, turn {turn}): the prompt is not "
            "the start of the conversation with the reply; train with --style text"
        )
    return full[len(prompt) :]


def _fit(
    task: Task, history: list[Segment], tokenizer: Any, budget: int, style: str = "text"
) -> tuple[list[int], bool]:
    """The rendering of ``history`` within ``budget`` tokens: oldest whole turns dropped first (the
    fewest that make it fit, found by bisection: rendering is re-tokenized per try), and only when the
    last observation alone is too long, its oldest tokens."""

    def ids_from(start: int) -> list[int]:
        segments = history[start:]
        if style == "chat":
            messages = task.render(segments, "chat")
            assert isinstance(messages, list)
            return _chat_ids(tokenizer, messages, generation_prompt=True)
        return tokenizer(task.render(segments, "text"), add_special_tokens=True)["input_ids"]

    full = ids_from(0)
    if len(full) <= budget:
        return full, False
    # Turn boundaries: each observation after the first starts a shorter history that still makes sense.
    starts = [i for i, s in enumerate(history) if s.kind == "observation" and i > 0]
    low, high = 0, len(starts) - 1  # find the first start whose rendering fits
    best: list[int] | None = None
    while low <= high:
        middle = (low + high) // 2
        ids = ids_from(starts[middle])
        if len(ids) <= budget:
            best, high = ids, middle - 1
        else:
            low = middle + 1
    if best is not None:
        return best, True
    last = ids_from(starts[-1]) if starts else full
    return last[-budget:], True


def _fill_returns(samples: list[Sample], gamma: float, discount: Discount) -> None:
    """Monte Carlo return-to-go at every action token, each token's discount on V(next), and each
    token's factor on V(end state) (``tails``: what a truncated episode's return would add for the
    rest it never saw; 0 after a terminated end).

    per_turn: every token of turn t has G_t = r_t + gamma * G_{t+1}; inside an action the next state
    comes at discount 1, after the last token at gamma.
    per_token: token k of an n-token action has gamma^(n-1-k) * (r_t + gamma * F_{t+1}), where F is
    the return at the first token of the next turn; every transition is discounted by gamma.
    """
    following = 0.0  # per_turn: G_{t+1}; per_token: F_{t+1}
    tail = samples[-1].bootstrap if samples else 0.0  # the same recursion for a unit value at the end
    for sample in reversed(samples):
        n = len(sample.action_ids)
        last, last_tail = sample.reward + gamma * following, gamma * tail
        if discount == "per_turn":
            scale = [1.0] * n
            sample.discounts = [1.0] * (n - 1) + [gamma]
        else:
            scale = [gamma ** (n - 1 - k) for k in range(n)]
            sample.discounts = [gamma] * n
        sample.returns = [f * last for f in scale]
        sample.tails = [f * last_tail for f in scale]
        following = sample.returns[0] if n else last
        tail = sample.tails[0] if n else last_tail


# --- tensors -------------------------------------------------------------------------------------
def collate(samples: Sequence[Sample], pad_id: int) -> dict[str, Any]:
    """A right-padded batch:

    input_ids, attention_mask   [B, T]  prompt + action
    action_mask                 [B, T]  1.0 on action tokens (token j is predicted at position j-1)
    returns, discounts, tails   [B, T]  at action tokens (0 elsewhere)
    rewards                     [B, T]  the turn's reward on its last action token
    last_action                 [B]     index of the last action token
    bootstrap                   [B]     0.0 when the episode terminated at this turn
    next_ids, next_mask         [B, T'] the next state's prompt; next_last [B]: its last token index
    end_ids, end_mask, end_last         the same for the episode's end state (a bootstrapped MC return)
    """
    import torch

    width = max(len(s.prompt_ids) + len(s.action_ids) for s in samples)
    next_width = max(len(s.next_ids) for s in samples)
    b = len(samples)
    fields = _token_fields(b, width, pad_id)
    last_action = torch.zeros(b, dtype=torch.long)
    next_ids = torch.full((b, next_width), pad_id, dtype=torch.long)
    next_mask = torch.zeros((b, next_width), dtype=torch.long)
    ends = [s.end_ids or s.next_ids for s in samples]  # a hand-made sample without its episode: its next
    end_ids = torch.full((b, max(map(len, ends))), pad_id, dtype=torch.long)
    end_mask = torch.zeros_like(end_ids)
    for i, s in enumerate(samples):
        p, a = len(s.prompt_ids), len(s.action_ids)
        fields["input_ids"][i, : p + a] = torch.tensor(s.prompt_ids + s.action_ids)
        fields["attention_mask"][i, : p + a] = 1
        _put_action(fields, i, p, s)
        last_action[i] = p + a - 1
        next_ids[i, : len(s.next_ids)] = torch.tensor(s.next_ids)
        next_mask[i, : len(s.next_ids)] = 1
        end_ids[i, : len(ends[i])] = torch.tensor(ends[i])
        end_mask[i, : len(ends[i])] = 1
    return {
        **fields,
        "last_action": last_action,
        "bootstrap": torch.tensor([s.bootstrap for s in samples]),
        "next_ids": next_ids,
        "next_mask": next_mask,
        "next_last": next_mask.sum(dim=1) - 1,
        "end_ids": end_ids,
        "end_mask": end_mask,
        "end_last": end_mask.sum(dim=1) - 1,
    }


def _token_fields(rows: int, width: int, pad_id: int) -> dict[str, Any]:
    """Empty per-token batch fields, each [rows, width]: input_ids (padding), attention_mask,
    action_mask, returns, discounts, tails, rewards."""
    import torch

    fields = {"input_ids": torch.full((rows, width), pad_id, dtype=torch.long)}
    fields["attention_mask"] = torch.zeros((rows, width), dtype=torch.long)
    for name in ("action_mask", "returns", "discounts", "tails", "rewards"):
        fields[name] = torch.zeros((rows, width))
    return fields


def _put_action(fields: dict[str, Any], row: int, start: int, sample: Sample) -> int:
    """Write ``sample``'s action at ``start`` of ``row``: its mask, returns, discounts and tails, and its
    reward on the last token (whose position is returned)."""
    import torch

    end = start + len(sample.action_ids)
    fields["action_mask"][row, start:end] = 1.0
    fields["returns"][row, start:end] = torch.tensor(sample.returns)
    fields["discounts"][row, start:end] = torch.tensor(sample.discounts)
    fields["tails"][row, start:end] = torch.tensor(sample.tails or [0.0] * len(sample.action_ids))
    fields["rewards"][row, end - 1] = sample.reward
    return end - 1


def shuffled_batches(items: Sequence[Any], batch_size: int, seed: int, epoch: int) -> list[list[Any]]:
    """The epoch's batches (of samples, or of packed episodes): a seeded shuffle, so a resumed run
    replays the same order."""
    order = list(range(len(items)))
    random.Random(f"{seed}/{epoch}").shuffle(order)
    return [[items[i] for i in order[k : k + batch_size]] for k in range(0, len(order), batch_size)]


# --- packed episodes -----------------------------------------------------------------------------
@dataclass(slots=True)
class PackedEpisode:
    """A whole episode as one sequence: where the rendering only grows (a history the agent keeps,
    as in maze-po, Text-Nav PO and Wordle), every turn's prompt is a prefix of the next one, so one
    forward over the final rendering gives every turn's logits and values. Exactly the tokens the
    per-turn samples hold (checked token by token), at a fraction of the compute: turn t's context is
    no longer re-encoded for every later turn."""

    ids: list[int]  # the rendering after the last turn
    samples: list[Sample]  # the turns; turn t's action is ids[starts[t] : starts[t] + len(action)]
    starts: list[int]

    @property
    def action_tokens(self) -> int:
        return sum(len(s.action_ids) for s in self.samples)


def pack_episode(samples: Sequence[Sample]) -> PackedEpisode | None:
    """The episode's turns as one sequence, or None when its renderings are not prefix-preserving
    (a window that drops old turns, a prompt cut to the context budget, a chat template that
    re-renders earlier messages)."""
    if not samples or any(s.truncated_prompt for s in samples):
        return None
    starts = []
    for sample, following in zip(samples[:-1], [s.prompt_ids for s in samples[1:]], strict=True):
        start = len(sample.prompt_ids)
        if following[: start + len(sample.action_ids)] != sample.prompt_ids + sample.action_ids:
            return None
        starts.append(start)
    last = samples[-1]
    played = last.prompt_ids + last.action_ids
    starts.append(len(last.prompt_ids))
    if last.next_ids[: len(played)] == played:
        return PackedEpisode(ids=list(last.next_ids), samples=list(samples), starts=starts)
    # The final rendering lost its oldest segments to the task's window (maze-po keeps 40): its new
    # tokens go after the whole history. Only the value of a truncated end reads them (an
    # approximation: the policy never sees more than the window); after a termination nothing does.
    tail = _window_tail(played, last.next_ids)
    if tail is None:
        return None
    return PackedEpisode(ids=played + tail, samples=list(samples), starts=starts)


def _window_tail(before: list[int], after: list[int]) -> list[int] | None:
    """What ``after`` adds to ``before`` when ``after`` is ``before`` less some oldest tokens plus new
    ones (a leading special token may stay): the new tokens, or None when it is not that."""
    for lead in (0, 1):
        if lead and not (before and after and before[0] == after[0]):
            break
        for dropped in range(1, (len(before) - lead) // 2):
            kept = before[lead + dropped :]
            if after[lead : lead + len(kept)] == kept:
                return after[lead + len(kept) :]
    return None


def pack_dataset(samples: Sequence[Sample]) -> list[PackedEpisode] | None:
    """Every episode of ``samples`` packed, or None when any one cannot be (then train per turn)."""
    packed: list[PackedEpisode] = []
    by_episode: dict[str, list[Sample]] = {}
    for sample in samples:
        by_episode.setdefault(sample.key, []).append(sample)
    for turns in by_episode.values():
        episode = pack_episode(sorted(turns, key=lambda s: s.turn))
        if episode is None:
            return None
        packed.append(episode)
    return packed


def collate_packed(episodes: Sequence[PackedEpisode], pad_id: int) -> dict[str, Any]:
    """A right-padded batch of whole episodes, with ``collate``'s per-token fields and, instead of a
    separate next-state forward, ``next_state`` [B, T]: for each action token, the position whose
    hidden state is the next state (the token itself inside an action; after an action's last token,
    the end of the next observation). ``discounts`` there carry the bootstrap (0 after termination).
    ``end_state`` [B]: the position of the episode's end state (its last token, where ``tails`` read V).
    One padding column past the longest row keeps every next-state position inside the shifted view."""
    import torch

    width = max(len(e.ids) for e in episodes) + 1
    b = len(episodes)
    fields = _token_fields(b, width, pad_id)
    next_state = torch.zeros((b, width), dtype=torch.long)
    for i, episode in enumerate(episodes):
        n = len(episode.ids)
        fields["input_ids"][i, :n] = torch.tensor(episode.ids)
        fields["attention_mask"][i, :n] = 1
        ends = [*(start - 1 for start in episode.starts[1:]), n - 1]
        for sample, start, end_state in zip(episode.samples, episode.starts, ends, strict=True):
            last = _put_action(fields, i, start, sample)
            fields["discounts"][i, last] *= sample.bootstrap
            next_state[i, start : last + 1] = torch.arange(start, last + 1)
            next_state[i, last] = end_state
    return {
        **fields,
        "next_state": next_state,
        "end_state": torch.tensor([len(e.ids) - 1 for e in episodes]),
    }
