"""Q-guided decoding (the paper's policy extraction for MC returns and ILQL): sample from

    logits_BC + beta * Q                    (extraction "q"; min(Q1, Q2) with two Q heads)
    logits_BC + beta * (min(Q1, Q2) - V)    (extraction "advantage", ILQL)

i.e. pi(a | s) proportional to pi_BC(a | s) * exp(beta * Q(s, a)). (V is the same for every token of a
row, so both extractions give the same distribution; "advantage" is kept because it is what ILQL
names.) ``beta = 0`` is plain BC decoding.

``QGuidance`` is a ``transformers.LogitsProcessor``. It needs the hidden state each row's logits
came from: a forward pre-hook on the model's output layer (``model.get_output_embeddings()``, whose
input is the final hidden states [B, T, H]) keeps position -1 of whatever reaches it (the last prompt
token at prefill, the new token at each decoding step; left padding puts every row's latest token
last), and the processor, called right after that forward, turns it into ``beta * Q`` per row. The
captured state is per thread, so generations running on several threads over one model (engines
with different batching settings) each read their own. ``attach(model)`` installs the hook and
``detach()`` removes it; a detached processor refuses to run rather than decode unguided.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor

from lmrl.finetune.heads import EXTRACTIONS, HEADS_META, ValueHeads

RANK_CHUNK_VALUES = 2**24  # re-ranking: candidate logits per forward (64 MB of float32)


class QGuidance(LogitsProcessor):
    """Adds ``beta * Q`` (or ``beta * (min(Q1, Q2) - V)``) from ``heads`` to every row's scores."""

    def __init__(
        self,
        heads: ValueHeads,
        beta: float,
        extraction: str = "q",
        *,
        use_targets: bool = False,
        support: float = 0.0,
    ) -> None:
        if extraction not in EXTRACTIONS:
            raise ValueError(f"extraction must be one of {EXTRACTIONS}, not {extraction!r}")
        if extraction == "advantage" and heads.v is None:
            raise ValueError("extraction 'advantage' needs a value head")
        if use_targets and heads.target_q1 is None:
            raise ValueError("use_targets needs target Q heads")
        self.heads = heads
        # Tokens the BC policy gives less than ``support`` probability get no say: Q is only trusted
        # where the data went (off the data, an undertrained Q can be anything, and beta * Q would pick
        # garbage). 0 = the whole vocabulary, as the paper's formula.
        self.support = float(support)
        self.beta = float(beta)
        self.extraction = extraction
        self.use_targets = use_targets
        self._captured = threading.local()
        self._handle: Any = None

    def __repr__(self) -> str:
        return f"QGuidance(beta={self.beta}, extraction={self.extraction!r}, attached={self.attached})"

    # --- the hook --------------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._handle is not None

    def attach(self, model: Any) -> QGuidance:
        """Capture the hidden states that reach ``model``'s output layer (replaces an earlier hook)."""
        head = model.get_output_embeddings()
        if head is None:
            raise ValueError(f"{type(model).__name__} has no output layer to read hidden states from")
        self.detach()
        self._handle = head.register_forward_pre_hook(self._capture, with_kwargs=True)
        return self

    def detach(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.remove()
        self._captured.hidden = None

    def _capture(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs.get("input")
        # A copy of the last position only: a view would keep the whole [B, T, H] prefill alive.
        self._captured.hidden = hidden[..., -1, :].detach().clone()

    # --- the processor ---------------------------------------------------------------------------
    def bonus(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., H] -> [..., vocab]: Q (min over two heads), minus V for "advantage" (not times beta)."""
        heads = self.heads
        hidden = hidden.to(heads.dtype)
        first, second = (heads.target_q1, heads.target_q2) if self.use_targets else (heads.q1, heads.q2)
        q = first(hidden)
        if second is not None:
            q = torch.minimum(q, second(hidden))
        if self.extraction == "advantage":
            q = q - heads.v(hidden)
        return q

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        hidden = getattr(self._captured, "hidden", None)
        self._captured.hidden = None  # each forward's state serves exactly one call
        if hidden is None:
            raise RuntimeError("QGuidance saw no hidden state: attach(model) before generating")
        if hidden.shape[0] != scores.shape[0]:
            raise RuntimeError(f"QGuidance: {hidden.shape[0]} hidden states for {scores.shape[0]} rows")
        with torch.no_grad():
            bonus = self.bonus(hidden)
        if bonus.shape[-1] != scores.shape[-1]:
            raise RuntimeError(f"QGuidance: Q covers {bonus.shape[-1]} tokens, the logits {scores.shape[-1]}")
        guided = scores + self.beta * bonus.to(scores.dtype)
        if self.support <= 0:
            return guided
        probs = scores.float().softmax(dim=-1)
        eligible = (probs >= self.support) | (probs == probs.max(dim=-1, keepdim=True).values)
        return guided.masked_fill(~eligible, float("-inf"))


def guidance_from(heads: ValueHeads, meta: dict[str, Any], beta: float | None = None) -> QGuidance | None:
    """A (detached) ``QGuidance`` for heads saved with ``meta`` (``value_heads.json``) and ``beta``
    (default: the saved one); ``None`` when that beta is 0 (plain BC decoding)."""
    used = float(meta["beta"] if beta is None else beta)
    if used == 0:
        return None
    extra = meta.get("extra", {})
    use_targets = extra.get("guide_with", "q") == "target"
    return QGuidance(
        heads, used, meta["extraction"], use_targets=use_targets, support=extra.get("support", 0.0)
    )


def load_guidance(
    directory: str | Path, model: Any, beta: float | None = None
) -> tuple[QGuidance | None, dict[str, Any]]:
    """The heads saved in ``directory`` on ``model``'s device and dtype, checked against it, as a
    ``QGuidance`` attached to ``model`` (``None`` when beta is 0), and their metadata. Raises
    ``ValueHeadsError`` / ``HeadsMismatchError`` (one line) for a file that cannot serve ``model``."""
    heads, meta = ValueHeads.load(directory, device=model.device, dtype=model.dtype)
    heads.check_fits(model, where=str(Path(directory) / HEADS_META))
    processor = guidance_from(heads, meta, beta)
    return (processor.attach(model) if processor is not None else None), meta


@dataclass
class RankRequest:
    """One choice among complete actions: ``candidates`` are token ids that follow ``prompt_ids``."""

    prompt_ids: list[int]
    candidates: list[list[int]]
    temperature: float
    rng: Any  # a random.Random (used only at temperature > 0)


def rank_actions(
    model: Any,
    prompt_ids: list[int],
    candidates: list[list[int]],
    guidance: QGuidance | None,
    temperature: float,
    rng: Any,
) -> tuple[int, list[float]]:
    """``rank_batch`` for one request: the chosen index and its per-token BC log-probabilities."""
    return rank_batch(model, [RankRequest(prompt_ids, candidates, temperature, rng)], guidance)[0]


def rank_batch(
    model: Any, requests: list[RankRequest], guidance: QGuidance | None, prefix_store: Any = None
) -> list[tuple[int, list[float]]]:
    """Pick one of a small set of complete actions per request, instead of generating (the paper's
    re-ranker over the maze's four moves). Each candidate scores its BC log-likelihood plus, with
    ``guidance``, ``beta`` times its value (``advantage``: the sum over its tokens of min(Q1, Q2) - V;
    ``q``: Q of its last token, the return expected after the whole action). Greedy at temperature 0,
    else sampled from softmax(score / T) with the request's ``rng``. Every candidate of every request
    is one row of a single forward (many episodes' choices share it). Returns, per request, the chosen
    index and that action's per-token BC log-probabilities."""
    with torch.no_grad():
        token_logprobs, loglik, value = _candidate_scores(model, requests, guidance, prefix_store)
    scores = loglik if value is None else loglik + guidance.beta * value
    flat_scores, flat_logprobs = scores.tolist(), token_logprobs.tolist()
    chosen: list[tuple[int, list[float]]] = []
    row, token = 0, 0
    for request in requests:
        count = len(request.candidates)
        candidate_scores = flat_scores[row : row + count]
        if request.temperature <= 0:
            best = max(range(count), key=candidate_scores.__getitem__)
        else:
            top = max(candidate_scores)
            weights = [math.exp((s - top) / request.temperature) for s in candidate_scores]
            best = request.rng.choices(range(count), weights=weights)[0]
        offset = token + sum(len(c) for c in request.candidates[:best])
        chosen.append((best, flat_logprobs[offset : offset + len(request.candidates[best])]))
        row += count
        token += sum(len(c) for c in request.candidates)
    return chosen


def candidate_values(model: Any, requests: list[RankRequest], guidance: QGuidance) -> list[list[float]]:
    """Per request, each candidate's value as the re-ranker adds it (before ``beta``): what a
    checkpoint's value heads alone think of each action (the learning benchmark's diagnostics)."""
    with torch.no_grad():
        _, _, value = _candidate_scores(model, requests, guidance)
    flat, out, row = value.tolist(), [], 0
    for request in requests:
        out.append(flat[row : row + len(request.candidates)])
        row += len(request.candidates)
    return out


def _candidate_scores(
    model: Any, requests: list[RankRequest], guidance: QGuidance | None, prefix_store: Any = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Every candidate token's BC log-probability (flat), and per candidate its summed BC
    log-likelihood and (with ``guidance``) its value: ``advantage``, the sum over its tokens of
    min(Q1, Q2) - V; ``q``, Q of its last token."""
    device = next(model.parameters()).device
    # One flat index over every candidate token: its row (= its candidate); ``last``: each candidate's
    # last token.
    rows: list[int] = []
    last: list[int] = []
    for row, candidate in enumerate(c for request in requests for c in request.candidates):
        rows += [row] * len(candidate)
        last.append(len(rows) - 1)
    rows_t = torch.tensor(rows, device=device)
    token_logprobs, bonus = _candidate_tokens(model, requests, guidance, device, prefix_store)
    loglik = torch.zeros(len(last), device=device).index_add_(0, rows_t, token_logprobs)
    if guidance is None:
        return token_logprobs, loglik, None
    if guidance.extraction == "advantage":
        return token_logprobs, loglik, torch.zeros_like(loglik).index_add_(0, rows_t, bonus)
    return token_logprobs, loglik, bonus[torch.tensor(last, device=device)]


def _candidate_tokens(
    model: Any,
    requests: list[RankRequest],
    guidance: QGuidance | None,
    device: Any,
    prefix_store: Any = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every candidate token's BC log-probability and (with ``guidance``) its value bonus, in
    ``rank_batch``'s flat order. Each prompt is encoded once (left-padded, positions from the mask)
    and its cache is shared by its candidates, whose tokens but the last are one more forward, in
    chunks of rows: with a long history (maze-po keeps 40 segments) a choice costs about one prompt
    instead of one per candidate, and a large action set (Wordle's 400 words) stays within memory.
    With a ``prefix_store`` (``lmrl.agents.prefix_store``), a prompt that continues an earlier one
    (the same episode's previous turn) computes only its new tokens."""
    import copy

    from lmrl.agents.padded_generation import CACHE_KWARG

    prompts = [request.prompt_ids for request in requests]
    rest = max(len(c) for request in requests for c in request.candidates) - 1
    out, cache, mask = _encode_prompts(model, prompts, rest, device, prefix_store)
    owner = [i for i, request in enumerate(requests) for _ in request.candidates]
    candidates = [c for request in requests for c in request.candidates]  # tokens 1.. : a second forward
    vocab = out.logits.shape[-1]
    chunk = max(1, RANK_CHUNK_VALUES // ((rest + 1) * vocab))  # rows per forward
    last_logits, last_hidden = out.logits[:, -1:], out.hidden_states[-1][:, -1:]  # predict token 0
    logprobs: list[torch.Tensor] = []
    bonuses: list[torch.Tensor] = []
    for begin in range(0, len(candidates), chunk):
        rows = list(range(begin, min(begin + chunk, len(candidates))))
        mine = torch.tensor([owner[r] for r in rows], device=device)
        logits, hidden = last_logits[mine], last_hidden[mine]
        if rest > 0:
            shared = copy.deepcopy(cache)  # the prompts' cache only: small next to the candidates'
            shared.reorder_cache(mine)
            fed = [candidates[r][:-1] + [0] * (rest - len(candidates[r]) + 1) for r in rows]
            fed_mask = [[1] * (len(candidates[r]) - 1) + [0] * (rest - len(candidates[r]) + 1) for r in rows]
            lengths = torch.tensor([len(prompts[owner[r]]) for r in rows], device=device)
            following = model(
                input_ids=torch.tensor(fed, device=device),
                attention_mask=torch.cat([mask[mine], torch.tensor(fed_mask, device=device)], dim=1),
                position_ids=lengths[:, None] + torch.arange(rest, device=device),
                use_cache=True,
                output_hidden_states=True,
                **{CACHE_KWARG: shared},
            )
            logits = torch.cat([logits, following.logits], dim=1)
            hidden = torch.cat([hidden, following.hidden_states[-1]], dim=1)
        # [rows, rest + 1] -> the real tokens, row by row: rank_batch's flat order
        targets = torch.tensor(
            [candidates[r] + [0] * (rest + 1 - len(candidates[r])) for r in rows], device=device
        )
        real = torch.tensor([[k < len(candidates[r]) for k in range(rest + 1)] for r in rows], device=device)
        chosen = targets[real][:, None]
        logprobs.append(logits[real].float().log_softmax(dim=-1).gather(-1, chosen).squeeze(-1))
        if guidance is not None:
            bonuses.append(guidance.bonus(hidden[real]).float().gather(-1, chosen).squeeze(-1))
    return torch.cat(logprobs), (torch.cat(bonuses) if guidance is not None else None)


def _encode_prompts(
    model: Any, prompts: list[list[int]], room: int, device: Any, prefix_store: Any
) -> tuple[Any, Any, torch.Tensor]:
    """One forward over left-padded ``prompts``: (its outputs, whose last column predicts each
    candidate's first token; the key/value cache, with ``room`` more columns for the candidates;
    the attention mask of the prompt columns). With a ``prefix_store`` that supports the model, each
    row reuses the stored states of its longest stored prefix (laid out as ``generate_padded`` does)
    and the prompts are stored for the next turn."""
    from lmrl.agents.padded_generation import CACHE_KWARG, new_cache, output_cache

    matches = prefix_store.plan(model, prompts) if prefix_store is not None else None
    reuse = bool(matches) and prefix_store.supported is not False
    start, width = 0, max(map(len, prompts))  # start: columns of reused states
    if reuse:
        computed = max(len(p) - length for p, (_, length) in zip(prompts, matches, strict=True))
        reused = [(entry, max(0, len(p) - computed)) for p, (entry, _) in zip(prompts, matches, strict=True)]
        start = max(length for _, length in reused)
        width = start + computed
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = None
    if reuse:
        cache = new_cache(model, len(prompts), width + room)
        prefix_store.fill(cache, reused, start, sum(map(len, prompts)))
    out = model(
        input_ids=ids[:, start:],
        attention_mask=mask,
        position_ids=positions[:, start:],
        use_cache=True,
        output_hidden_states=True,
        **({CACHE_KWARG: cache} if reuse else {}),
    )
    if not reuse:
        return out, output_cache(out), mask
    kept = [(p, len(p), width - len(p), match) for p, match in zip(prompts, matches, strict=True)]
    prefix_store.keep(cache, kept)
    return out, cache, mask
