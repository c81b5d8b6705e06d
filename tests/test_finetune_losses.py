"""The MC-returns and ILQL losses against numbers worked out by hand on a toy batch.

The toy "model" is a bigram table: the hidden state at a position is the one-hot of the token there
(the state *is* the last token read) and the logits there are a fixed row ``LOGITS[token]``. With
value heads whose weights are set by hand, Q(s, a) = ``Q1[s, a]`` and V(s) = ``V[s]`` exactly, so every
term of every loss is a short sum of known numbers, computed below in plain Python.

The batch (pad 0, gamma 0.5, per_turn discounts):

    row A  prompt 1 2 | action 3 4      the only turn of an episode that terminated: reward 1,
                                        bootstrap 0, next state "1 2 3 4 5"
    row B  prompt 6   | action 7 8      turn 0 of an episode whose turn 1 (reward 2) was truncated:
                                        reward 0.5, bootstrap 1, next state "6 7 8 9"

so its four action tokens are (state -> token): 2 -> 3, 3 -> 4 (row A) and 6 -> 7, 7 -> 8 (row B).
The tables also hold numbers where the losses must not look (the prompt's 1 -> 2, the padding's
8 -> 0, V of A's next state): a mask or a bootstrap gone wrong changes the totals.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmrl.finetune import ilql, mc_returns
from lmrl.finetune.data import Sample, _fill_returns, collate
from lmrl.finetune.heads import ValueHeads

VOCAB = 10  # tokens 0..9, 0 the padding; the toy's hidden size is VOCAB too (one-hot states)
GAMMA = 0.5
STEPS = [(2, 3), (3, 4), (6, 7), (7, 8)]  # (state, action token) of the batch's action tokens, in order

# table[(s, a)]: the value for next token a in state s; every entry not listed is 0.
LOGITS = {(1, 2): 5.0, (2, 3): 1.0, (2, 5): 0.5, (3, 4): 2.0, (6, 7): 0.5, (7, 8): -1.0, (8, 0): 3.0}
Q1 = {(1, 2): 7.0, (2, 3): 0.5, (2, 5): 1.0, (3, 4): -0.25, (6, 7): 1.0, (7, 8): 0.75, (8, 0): -5.0}
Q1[(5, 1)] = 3.0  # V(5) = 0.3: the end state of row A's terminated episode, which must not count
Q2 = {(1, 2): -3.0, (2, 3): 0.25, (3, 4): 0.25, (6, 7): 0.5, (7, 8): 1.25}
TARGET_Q1 = {(2, 3): 0.5, (3, 4): 1.0, (6, 7): 0.5, (7, 8): 1.0}
TARGET_Q2 = {(2, 3): 0.0, (3, 4): 0.75, (6, 7): 0.75, (7, 8): 1.25}
V = {1: -2.0, 2: 0.25, 3: 0.5, 5: 4.0, 6: 1.0, 7: 0.5, 9: 0.75}


# --- plain-Python arithmetic -------------------------------------------------------------------
def row(table: dict[tuple[int, int], float], s: int) -> list[float]:
    return [table.get((s, a), 0.0) for a in range(VOCAB)]


def logsumexp(values: list[float]) -> float:
    return math.log(sum(math.exp(x) for x in values))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def nll(s: int, a: int) -> float:
    """-log softmax(LOGITS[s])[a]."""
    return logsumexp(row(LOGITS, s)) - LOGITS.get((s, a), 0.0)


def cql(table: dict[tuple[int, int], float]) -> float:
    """mean_j logsumexp_a Q(s_j, a) - Q(s_j, a_j)."""
    return mean([logsumexp(row(table, s)) - table.get((s, a), 0.0) for s, a in STEPS])


# --- the toy model, heads and batch -------------------------------------------------------------
def matrix(table: dict[tuple[int, int], float]) -> torch.Tensor:
    """[s, a] -> value, as a VOCAB x VOCAB tensor."""
    out = torch.zeros(VOCAB, VOCAB)
    for (s, a), value in table.items():
        out[s, a] = value
    return out


class BigramToy(nn.Module):
    """The Hugging Face call interface the losses use, with fixed outputs: hidden state = one-hot of
    the token at the position, logits = ``LOGITS[token]``."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(hidden_size=VOCAB, vocab_size=VOCAB)
        self.register_buffer("table", matrix(LOGITS))
        self.calls: list[tuple[int, ...]] = []

    def forward(self, input_ids, attention_mask, output_hidden_states=False, use_cache=True):
        assert use_cache is False and attention_mask.shape == input_ids.shape
        self.calls.append(tuple(input_ids.shape))
        hidden = F.one_hot(input_ids, VOCAB).float()  # [B, T, H]
        logits = hidden @ self.table  # [B, T, V]: row LOGITS[token]
        states = (torch.zeros_like(hidden), hidden) if output_hidden_states else None
        return SimpleNamespace(logits=logits, hidden_states=states)


def set_q(layer: nn.Linear, table: dict[tuple[int, int], float]) -> None:
    """Q(s, a) = weight[a] . onehot(s) + bias[a] = table[s, a]."""
    with torch.no_grad():
        layer.weight.copy_(matrix(table).T)
        layer.bias.zero_()


def set_v(layer: nn.Linear) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[V.get(s, 0.0) for s in range(VOCAB)]]))
        layer.bias.zero_()


def sample(prompt, action, next_ids, reward, bootstrap) -> Sample:
    return Sample(
        prompt_ids=prompt,
        action_ids=action,
        next_ids=next_ids,
        reward=reward,
        returns=[],
        discounts=[],
        bootstrap=bootstrap,
        episode_return=0.0,
    )


def episodes() -> tuple[Sample, Sample, Sample]:
    """Row A's episode (one turn, terminated), then row B's two turns (the second truncated)."""
    a = sample([1, 2], [3, 4], [1, 2, 3, 4, 5], reward=1.0, bootstrap=0.0)  # terminated
    b0 = sample([6], [7, 8], [6, 7, 8, 9], reward=0.5, bootstrap=1.0)
    b1 = sample([6, 7, 8, 9], [3], [6, 7, 8, 9, 3, 1], reward=2.0, bootstrap=1.0)  # truncated end
    _fill_returns([a], GAMMA, "per_turn")
    _fill_returns([b0, b1], GAMMA, "per_turn")
    return a, b0, b1


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    a, b0, _ = episodes()
    # per_turn: every token of a turn carries G_t = r_t + gamma * G_{t+1}; discount 1 inside the action,
    # gamma after its last token.
    assert a.returns == [1.0, 1.0] and a.discounts == [1.0, GAMMA]
    assert b0.returns == [0.5 + GAMMA * 2.0] * 2 == [1.5, 1.5] and b0.discounts == [1.0, GAMMA]
    out = collate([a, b0], pad_id=0)
    assert out["input_ids"].tolist() == [[1, 2, 3, 4], [6, 7, 8, 0]]
    assert out["last_action"].tolist() == [3, 2] and out["next_last"].tolist() == [4, 3]
    return out


RETURNS = [1.0, 1.0, 1.5, 1.5]  # G_j of the four action tokens (STEPS order)


# --- MC returns ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cql_weight", [0.0, 0.1])
def test_mc_loss_is_bc_plus_squared_return_error_plus_cql(batch, cql_weight) -> None:
    model = BigramToy()
    heads = mc_returns.make_heads(model, {})
    assert heads.names == ["q1"]
    set_q(heads.q1, Q1)

    total, metrics = mc_returns.loss(model, heads, batch, {"cql_weight": cql_weight})

    # L_BC = mean_j -log pi(a_j | s_j) over the 4 action tokens (not the prompt's 1 -> 2, not padding)
    bc = mean([nll(s, a) for s, a in STEPS])
    # L_Q = mean_j (Q1(s_j, a_j) - G_j)^2 = ((0.5-1)^2 + (-0.25-1)^2 + (1-1.5)^2 + (0.75-1.5)^2) / 4
    q = mean([(Q1[step] - g) ** 2 for step, g in zip(STEPS, RETURNS, strict=True)])
    assert q == (0.25 + 1.5625 + 0.25 + 0.5625) / 4 == 0.65625
    # L_CQL = mean_j logsumexp_a Q1(s_j, a) - Q1(s_j, a_j)
    expected = bc + q + cql_weight * cql(Q1)

    assert float(total) == pytest.approx(expected, abs=1e-6)
    assert metrics["bc"] == pytest.approx(bc, abs=1e-6)
    assert metrics["q"] == pytest.approx(q, abs=1e-6)
    if cql_weight:
        assert metrics["cql"] == pytest.approx(cql(Q1), abs=1e-6)
    else:
        assert "cql" not in metrics
    assert model.calls == [(2, 4)]  # one forward: MC needs no next state


def test_mc_bootstrap_adds_the_behaviour_value_of_the_state_a_truncated_episode_was_cut_in() -> None:
    """truncation="bootstrap": G_j + tail_j * V(end), V(s) = sum_a softmax(LOGITS[s])_a Q1[s, a], with
    tail = the discount to the end (0 after A's terminated end, whose V(5) = 0.3 must not count)."""
    a, b0, b1 = episodes()
    a.end_ids, b0.end_ids = a.next_ids, b1.next_ids  # as episode_samples names them
    assert a.tails == [0.0, 0.0] and b0.tails == [GAMMA * GAMMA] * 2 == [0.25, 0.25]
    batch = collate([a, b0], pad_id=0)
    model = BigramToy()
    heads = mc_returns.make_heads(model, {})
    set_q(heads.q1, Q1)

    _, metrics = mc_returns.loss(model, heads, batch, {"cql_weight": 0.0, "truncation": "bootstrap"})

    # B was cut in "... 3 1": V(1) = softmax over LOGITS[1] (5 on token 2, 0 elsewhere) times Q1[1]
    # (7 on token 2): 7 e^5 / (e^5 + 9)
    v_end = 7.0 * math.exp(5) / (math.exp(5) + 9)
    returns = [1.0, 1.0, 1.5 + 0.25 * v_end, 1.5 + 0.25 * v_end]
    q = mean([(Q1[step] - g) ** 2 for step, g in zip(STEPS, returns, strict=True)])
    assert metrics["q"] == pytest.approx(q, abs=1e-6)
    assert metrics["v_end"] == pytest.approx(v_end, abs=1e-6)  # over the tokens of cut episodes only
    assert model.calls == [(2, 4), (2, 6)]  # the batch, then the end states (no gradient)
    _, observed = mc_returns.loss(model, heads, batch, {"cql_weight": 0.0})
    assert observed["q"] == pytest.approx(0.65625, abs=1e-6) and "v_end" not in observed


@pytest.mark.parametrize("algo", [mc_returns, ilql])
def test_value_weight_scales_every_value_term_and_leaves_bc_alone(batch, algo) -> None:
    """L = L_BC + value_weight * (the value terms, CQL included): at 0.25 the total is BC plus a
    quarter of what the value terms add at 1."""
    model = BigramToy()
    heads = ilql_heads(model) if algo is ilql else algo.make_heads(model, {})
    if algo is mc_returns:
        set_q(heads.q1, Q1)
    settings = {"tau": 0.7, "cql_weight": 0.1}
    full, metrics = algo.loss(model, heads, batch, settings)
    quarter, same = algo.loss(model, heads, batch, {**settings, "value_weight": 0.25})
    assert same == metrics  # the terms themselves do not change
    bc = metrics["bc"]
    assert float(quarter) == pytest.approx(bc + 0.25 * (float(full) - bc), abs=1e-6)


# --- ILQL ---------------------------------------------------------------------------------------
def ilql_heads(model: BigramToy) -> ValueHeads:
    heads = ilql.make_heads(model, {})
    assert heads.names == ["q1", "q2", "v", "target_q1", "target_q2"]
    for name, table in (("q1", Q1), ("q2", Q2), ("target_q1", TARGET_Q1), ("target_q2", TARGET_Q2)):
        set_q(getattr(heads, name), table)
    set_v(heads.v)
    return heads


# target_j = r_j + discount_j * V(s_{j+1}), with V(next turn) * bootstrap after an action's last token
TARGETS = [
    0.0 + 1.0 * V[3],  # A, 2 -> 3: inside the action, the next state is "... 3"            = 0.5
    1.0 + GAMMA * V[5] * 0.0,  # A, 3 -> 4: reward 1, terminated: V("1 2 3 4 5") drops    = 1.0
    0.0 + 1.0 * V[7],  # B, 6 -> 7                                                        = 0.5
    0.5 + GAMMA * V[9] * 1.0,  # B, 7 -> 8: reward 0.5, bootstrap 1: 0.5 + 0.5 * 0.75     = 0.875
]


def test_ilql_targets_bootstrap_the_next_value_only_after_a_truncated_end(batch) -> None:
    assert TARGETS == [0.5, 1.0, 0.5, 0.875]
    model = BigramToy()
    heads = ilql_heads(model)
    hidden = F.one_hot(batch["input_ids"], VOCAB).float()[:, :-1]
    v = heads(hidden)["v"].squeeze(-1)
    final = heads(F.one_hot(torch.tensor([5, 9]), VOCAB).float())["v"].squeeze(-1)  # V(next turn)
    following = ilql.next_values(v, final, batch)
    target = batch["rewards"][:, 1:] + batch["discounts"][:, 1:] * following
    mask = batch["action_mask"][:, 1:].bool()
    assert target[mask].tolist() == pytest.approx(TARGETS, abs=1e-6)


@pytest.mark.parametrize("cql_weight", [0.0, 0.1])
def test_ilql_loss_terms_match_the_hand_computation(batch, cql_weight) -> None:
    tau = 0.7
    model = BigramToy()
    heads = ilql_heads(model)

    total, metrics = ilql.loss(model, heads, batch, {"tau": tau, "cql_weight": cql_weight})

    bc = mean([nll(s, a) for s, a in STEPS])
    # L_Q = mean_j (Q1(s_j, a_j) - target_j)^2 + (Q2(s_j, a_j) - target_j)^2
    q = mean([(Q1[st] - t) ** 2 + (Q2[st] - t) ** 2 for st, t in zip(STEPS, TARGETS, strict=True)])
    # L_V = mean_j w_j (Qt_j - V(s_j))^2, Qt = min of the *target* heads, w = tau above V, 1 - tau below:
    #   2 -> 3: min(0.5, 0)     - V(2)=0.25 = -0.25  (w 0.3)
    #   3 -> 4: min(1, 0.75)    - V(3)=0.5  = +0.25  (w 0.7)
    #   6 -> 7: min(0.5, 0.75)  - V(6)=1    = -0.5   (w 0.3)
    #   7 -> 8: min(1, 1.25)    - V(7)=0.5  = +0.5   (w 0.7)
    diffs = [min(TARGET_Q1[(s, a)], TARGET_Q2[(s, a)]) - V[s] for s, a in STEPS]
    assert diffs == [-0.25, 0.25, -0.5, 0.5]
    v = mean([(tau if d >= 0 else 1 - tau) * d**2 for d in diffs])
    assert v == pytest.approx((0.3 * 0.0625 + 0.7 * 0.0625 + 0.3 * 0.25 + 0.7 * 0.25) / 4, abs=1e-12)
    # L_CQL = the CQL term of each online Q head, summed
    penalty = cql(Q1) + cql(Q2)
    expected = bc + q + v + cql_weight * penalty

    assert float(total) == pytest.approx(expected, abs=1e-6)
    assert metrics["bc"] == pytest.approx(bc, abs=1e-6)
    assert metrics["q"] == pytest.approx(q, abs=1e-6)
    assert metrics["v"] == pytest.approx(v, abs=1e-6)
    if cql_weight:
        assert metrics["cql"] == pytest.approx(penalty, abs=1e-6)
    else:
        assert "cql" not in metrics
    assert model.calls == [(2, 4), (2, 5)]  # the batch, then the next states (V(next turn))


def test_ilql_value_gradient_comes_from_the_expectile_loss_only(batch) -> None:
    """V(s_{j+1}) in the Q target is detached and V(next turn) is computed without gradient: the V
    head's gradient is dL_V/dV(s) = -2 w (Qt - V(s)) / 4 at the states that are some s_j, 0 elsewhere;
    the target heads get none."""
    model = BigramToy()
    heads = ilql_heads(model)
    total, _ = ilql.loss(model, heads, batch, {"tau": 0.7, "cql_weight": 0.1})
    total.backward()
    expected = [0.0] * VOCAB
    expected[2] = -2 * 0.3 * -0.25 / 4  # 0.0375
    expected[3] = -2 * 0.7 * 0.25 / 4  # -0.0875 (V(3) is also token 2 -> 3's next value: detached)
    expected[6] = -2 * 0.3 * -0.5 / 4  # 0.075
    expected[7] = -2 * 0.7 * 0.5 / 4  # -0.175 (also 6 -> 7's next value)
    assert heads.v.weight.grad[0].tolist() == pytest.approx(expected, abs=1e-6)  # V(5), V(9): 0
    assert heads.target_q1.weight.grad is None and heads.target_q2.weight.grad is None


def test_ilql_action_backup_gives_every_token_its_turns_target_and_v_the_whole_actions_value(batch) -> None:
    """backup="action": both tokens of a turn regress on r_t + discount * V(where the next action
    starts); V learns only before each action's first token, from min(Q1', Q2') after its last."""
    tau = 0.7
    model = BigramToy()
    heads = ilql_heads(model)

    total, metrics = ilql.loss(model, heads, batch, {"tau": tau, "cql_weight": 0.0, "backup": "action"})

    # A: reward 1, terminated -> 1.0 on both tokens; B: 0.5 + GAMMA * V(9) * bootstrap 1 = 0.875 on both
    targets = [1.0, 1.0, 0.875, 0.875]
    q = mean([(Q1[st] - t) ** 2 + (Q2[st] - t) ** 2 for st, t in zip(STEPS, targets, strict=True)])
    # V at the two first-token states only: V(2) against min(Q1', Q2')(3 -> 4) = min(1, 0.75) = 0.75,
    # V(6) against min(Q1', Q2')(7 -> 8) = min(1, 1.25) = 1
    diffs = [0.75 - V[2], 1.0 - V[6]]
    assert diffs == [0.5, 0.0]
    v = mean([(tau if d >= 0 else 1 - tau) * d**2 for d in diffs])
    bc = mean([nll(s, a) for s, a in STEPS])
    assert metrics["q"] == pytest.approx(q, abs=1e-6)
    assert metrics["v"] == pytest.approx(v, abs=1e-6)
    assert float(total) == pytest.approx(bc + q + v, abs=1e-6)
    assert ilql.extraction({"backup": "action"}) == "q" and ilql.extraction({}) == "advantage"


def test_action_bounds_find_each_actions_first_and_last_token() -> None:
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]]).float()
    first, last = ilql.action_bounds(mask)
    assert first.tolist() == [[0, 1, 0, 0, 0, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    assert last[0].tolist()[:10] == [2, 2, 2, 5, 5, 5, 9, 9, 9, 9]
    assert last[1].tolist()[:2] == [1, 1]


def test_polyak_update_moves_the_targets_by_alpha() -> None:
    heads = ValueHeads(3, 2, double_q=True, value=True, targets=True)
    for name, base in (("q1", 1.0), ("q2", -2.0), ("target_q1", 0.5), ("target_q2", 4.0)):
        layer = getattr(heads, name)
        with torch.no_grad():
            layer.weight.copy_(base * torch.arange(6.0).reshape(2, 3))
            layer.bias.fill_(base)
    online = {k: v.clone() for k, v in heads.state_dict().items()}

    ilql.after_step(heads, {"polyak": 0.25})

    after = {k: v.clone() for k, v in heads.state_dict().items()}
    for head in ("q1", "q2"):
        for part in ("weight", "bias"):
            key, target = f"{head}.{part}", f"target_{head}.{part}"
            # Q' <- alpha Q + (1 - alpha) Q' (dyadic numbers: exact in float32)
            assert torch.equal(after[target], 0.25 * online[key] + 0.75 * online[target]), target
            assert torch.equal(after[key], online[key]), key  # the online heads do not move
    assert torch.equal(after["v.weight"], online["v.weight"])
    # e.g. target_q1's bias: 0.25 * 1 + 0.75 * 0.5 = 0.625; target_q2's: 0.25 * -2 + 0.75 * 4 = 2.5
    assert after["target_q1.bias"].tolist() == [0.625, 0.625]
    assert after["target_q2.bias"].tolist() == [2.5, 2.5]

    ilql.after_step(heads, {})  # the default alpha: 0.005
    expected = 0.005 * online["q1.bias"] + 0.995 * after["target_q1.bias"]
    assert torch.allclose(heads.state_dict()["target_q1.bias"], expected, atol=1e-7)
