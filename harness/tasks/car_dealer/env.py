"""Car Dealer (LMRL-Gym; ``reference/lmrl-gym.md`` §5.3): the agent sells cars to a simulated buyer.

This module is the environment, the reward and the anchors; the buyer's profile and the catalog are in
``catalog``, what free text says in ``text``, the built-in buyer in ``buyer``, the scripted sellers in
``policies`` (all in ``lmrl.tasks.car_dealer``, which re-exports their public names).

Buyer. A hidden profile with the paper code's sets: personality (10), preferred brand (13), body type
(6), 1-4 wanted features (of 8) and a budget of $10k/30k/50k/70k/90k. Episode ``index`` fixes the
(budget, personality) pair through ``lmrl.sampling.stratified_item`` with the budget as category
(every 5 consecutive episodes meet all five budgets, 50 meet every pair once); brand, type, features
and the built-in buyer's hidden traits come from the seed.

Flow

* The first observation is the buyer's opening line ("Hi, I'm looking for a Honda SUV with a backup
  camera."), worded by personality; how much it reveals varies (an uncommunicative buyer says little).
* Each agent action is one seller message, read by ``read_message`` (``text``): free text, cut where the model
  starts writing the buyer's turn (a ``Buyer:`` line or a decision tag), the text after a marker line
  (``Message:``, ``Reply:``, ``Seller:`` ...) when there is one; at most 1,000 characters
  (``too-long``), never empty (``empty``). An invalid reply gets reward 0, the buyer answers ``...?``
  and the turn counts.
* The buyer (role ``buyer``, default ``scripted/buyer``) replies. When the reply carries a decision
  tag, ``Output: Decision=Accept MSRP=$M Buy Price=$P`` or ``Output: Decision=Reject MSRP=$M``, the
  environment parses it with ``parse_decision`` (tolerant of case, spacing, commas, ``k`` suffixes,
  missing ``Output:``), removes it from what the seller sees, and ends the episode with the reward.
  The built-in buyer holds the seller to the catalog: a feature the car lacks or an inflated list
  price is called out, costs trust and a strike, and two such lies end the talk (``check_claims``).
* Cap: 50 seller messages (``max_steps``). On the 50th the buyer is told to decide now; a model buyer
  that still writes no tag is re-prompted once ("You must decide now: output the decision line"); if
  there is still none, the episode ends with no decision: reward 0 (as in the paper: no tag -> 0).

Reward (task option ``reward_mode``; all reward comes on the final step)

* ``"sale"`` (default): a sale at price P of a car with MSRP M pays the paper's sale term
  ``P / ((budget + M) / 2)``; a walk-away, a rejection or no decision pays 0. So no outcome without a
  sale ever beats a sale, and a seller that never sells scores 0.
* ``"paper"``: the paper code's literal formula: bought -> ``P / ((budget + M) / 2)``; not bought ->
  ``-(budget - M) / M``. Its walk-away term is *positive* whenever the car discussed costs more than
  the budget, so pitching the priciest car and never selling (``scripted/overprice``) averages 0.573,
  above the behaviour seller's 0.503; kept only to reproduce the paper's numbers.
* ``"revenue"``: ``P / 1000`` if bought, else 0 (the paper's PPO script).
* M is the tag's MSRP; when the tag has none, the catalog MSRP of the car under discussion; when no car
  was discussed, reward 0. An acceptance without a price uses the seller's last quote for that car, else
  M. Prices in a tag below 1000 without a suffix are read as thousands ("MSRP=$35" -> 35,000).
* ``reward_range``: sale ``[0, BEST_RETURN]`` (1.84, a $10k buyer paying the priciest MSRP); paper
  ``[WORST_RETURN, BEST_RETURN]`` = [-8.47, 1.84]; revenue [0, 117].
* The agent's system prompt states the goal (a sale at the best price the customer accepts), never
  the formula.
* Success = the buyer bought. ``episode_info``: the profile, the built-in buyer's traits, the decision
  (``accepted`` / ``rejected`` / ``none``), MSRP, price, the car under discussion, turns, reward mode,
  the buyer's reason and the lies it caught; ``sale_price(episode)`` reads the price back for judges.

Normalization anchors (the paper printed only min = 0 for this task), measured by ``measure_policy``
(scripted seller vs the built-in buyer, episodes 0-1999 with the seeds of ``lmrl run --seed 0``; a
test pins them):

* sale: ``min = 0`` (no sale); ``avg = 0.3860`` (behaviour seller); ``max = 1.0``: the built-in buyer
  never pays more than ``min(budget, M)``, so a sale scores ``<= 2 min(B, M) / (B + M) <= 1`` (equal
  only for a full-price sale of a car whose MSRP is the budget); a model buyer that overpays can
  exceed it.
* paper: ``min = 0`` (no decision), ``avg = 0.5030``, ``max = 1.0``. The formula's true floor is far
  lower (``WORST_RETURN``, about -8.5); returns below 0 normalize below 0.
* revenue: ``min = 0``, ``avg = 21.93``, ``max = 50`` (the mean budget: every buyer paying it all).

Measured (2000 episodes): behaviour seller success 0.49, sale 0.386 (std 0.41), paper 0.503, revenue
21.9, length 15.4 (std 4.3) (the paper's dataset: success 0.53, return 0.562 (0.422), length 16.5
(3.61)); random seller success 0.0025, sale 0.001, paper -0.61, length 6.4; overprice seller success
0, sale 0.0, paper 0.573, length 4.7.

Scripted policies: ``random`` (random sales lines about random catalog cars and prices), ``behavior``
(a plausible salesperson standing in for the paper's GPT-generated sellers: asks about needs and
budget, pitches a catalog car of the stated brand and type, answers questions truthfully, concedes in
small steps down to a private floor, sometimes upsells past the budget), ``overprice`` (the exploit
above) and ``buyer`` (the built-in buyer, for the ``buyer`` role; see ``buyer_policy``).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Any, ClassVar

from lmrl.parsing import Invalid, Parsed
from lmrl.rollout import derive_seed, episode_stats, play_policy
from lmrl.task import Anchors, InvalidTaskOption, Policy, Segment, StepResult, Style, Task
from lmrl.tasks.car_dealer.buyer import (
    BuyerState,
    buyer_policy,
    buyer_system_prompt,
    draw_traits,
    opening_line,
)
from lmrl.tasks.car_dealer.catalog import BUDGETS, CATALOG, draw_profile
from lmrl.tasks.car_dealer.policies import behavior_policy, overprice_policy, random_policy
from lmrl.tasks.car_dealer.text import MAX_MESSAGE_CHARS, Decision, OfferTracker, read_message, split_decision
from lmrl.tasks.registry import register_task

MAX_TURNS = 50
REWARD_MODES: tuple[str, ...] = ("sale", "paper", "revenue")
MUST_DECIDE = "You must decide now: output the decision line."


# --- reward --------------------------------------------------------------------------------------
def fancy_reward(bought: bool, price: float | None, budget: float, msrp: float | None) -> float:
    """The paper code's formula (``reward_mode=paper``): bought -> P / ((budget + M) / 2); not bought ->
    -(budget - M) / M; M unknown -> 0."""
    if msrp is None or msrp <= 0:
        return 0.0
    if bought:
        return 0.0 if price is None else price / ((budget + msrp) / 2)
    return -(budget - msrp) / msrp


def sale_reward(bought: bool, price: float | None, budget: float, msrp: float | None) -> float:
    """The default: the paper's sale term P / ((budget + M) / 2) for a sale, 0 for anything else."""
    return fancy_reward(True, price, budget, msrp) if bought else 0.0


def revenue_reward(bought: bool, price: float | None) -> float:
    """The PPO script's alternative: the sale price in $1000s, 0 without a sale."""
    return price / 1000 if bought and price is not None else 0.0


def decision_reward(decision: Decision | None, budget: float, mode: str = "sale") -> float:
    """Reward of a final decision (``None`` = no tag at the cap -> 0)."""
    if decision is None:
        return 0.0
    if mode == "revenue":
        return revenue_reward(decision.accepted, decision.price)
    if mode == "paper":
        return fancy_reward(decision.accepted, decision.price, budget, decision.msrp)
    return sale_reward(decision.accepted, decision.price, budget, decision.msrp)


CHEAPEST = min(car.msrp for car in CATALOG)
PRICIEST = max(car.msrp for car in CATALOG)
# The formula's extremes over the sets and the catalog, for prices up to max(budget, M):
# worst = a $90k buyer rejecting the cheapest car; best = a $10k buyer paying the priciest car's MSRP.
WORST_RETURN = fancy_reward(False, None, max(BUDGETS), CHEAPEST)
BEST_RETURN = fancy_reward(True, PRICIEST, min(BUDGETS), PRICIEST)


# --- the environment -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Line:
    speaker: str  # "buyer" or "seller"
    text: str  # what the other side sees (decision tags stripped)
    raw: str  # exactly what was written


RUBRIC_SELLER_NATURALNESS = (
    "You are judging the agent, a car salesperson talking with a customer (the environment lines are the "
    "customer). Rate how natural and persuasive the salesperson is on a 1-5 scale. Consider: does it "
    "sound like a real, courteous salesperson; does it listen to and use what the customer said (brand, "
    "type, features, budget); does it recommend suitable cars with concrete details; does it negotiate "
    "sensibly rather than repeating itself or contradicting itself; does it avoid pressure tactics, "
    "false claims and off-topic text. 1 = incoherent, robotic or ignores the customer; 3 = understandable "
    "but generic, repetitive or pushy; 5 = fluent, attentive and convincing, like a skilled human "
    "salesperson. Answer with 'Score: N' and a one-sentence 'Rationale: ...'."
)


def sale_price(episode_or_info: Any) -> float | None:
    """The agreed sale price of a finished car-dealer episode (an ``Episode`` or its ``info`` dict),
    ``None`` when nothing was sold."""
    info = getattr(episode_or_info, "info", episode_or_info)
    if not isinstance(info, dict) or info.get("decision") != "accepted":
        return None
    price = info.get("price")
    return None if price is None else float(price)


# Anchors per reward mode (the paper printed only min = 0 for this task). avg: the behaviour seller
# against the built-in buyer, episodes 0-1999 (seeds of ``lmrl run --seed 0``),
# ``measure_policy("behavior", 2000)``.
SALE_ANCHORS = Anchors(
    min=0.0,
    avg=0.3860,
    max=1.0,
    source=(
        "ours (paper gave only min=0), measured: min = no sale (0); avg = behavior seller vs built-in "
        "buyer, episodes 0-1999 (measure_policy); max = per-episode supremum vs built-in buyer "
        "(full-price sale of a car whose MSRP equals the budget)"
    ),
)
PAPER_ANCHORS = Anchors(
    min=0.0,
    avg=0.5030,
    max=1.0,
    source=(
        "ours (paper gave only min=0), measured: min = no decision (0); avg = behavior seller vs "
        "built-in buyer, episodes 0-1999 (measure_policy); max = supremum of a sale vs built-in buyer"
    ),
)
REVENUE_ANCHORS = Anchors(
    min=0.0,
    avg=21.93,
    max=50.0,
    source=(
        "ours, measured: min = no sale; avg = behavior seller vs built-in buyer, episodes 0-1999 "
        "(measure_policy); max = mean budget of the profile set ($50k)"
    ),
)
ANCHORS: dict[str, Anchors] = {"sale": SALE_ANCHORS, "paper": PAPER_ANCHORS, "revenue": REVENUE_ANCHORS}


@register_task
class CarDealer(Task):
    name: ClassVar[str] = "car-dealer"
    version: ClassVar[str] = "2"
    description: ClassVar[str] = (
        "Sell a car to a simulated buyer with a hidden profile; reward from the sale price, budget and MSRP."
    )
    anchors: ClassVar[Anchors] = SALE_ANCHORS
    reward_range: ClassVar[tuple[float, float]] = (0.0, BEST_RETURN)
    roles: ClassVar[dict[str, str]] = {"buyer": "scripted/buyer"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "overprice": overprice_policy,
        "buyer": buyer_policy,
    }
    max_steps = MAX_TURNS
    answer_example: ClassVar[str] = "Message: Welcome in! What kind of car are you looking for today?"

    def __init__(self, reward_mode: str = "sale", **options: Any) -> None:
        super().__init__(**options)
        if reward_mode not in REWARD_MODES:
            raise InvalidTaskOption(
                f"reward_mode must be one of {', '.join(REWARD_MODES)}, not {reward_mode!r}"
            )
        self.reward_mode = reward_mode
        self.anchors = ANCHORS[reward_mode]  # type: ignore[misc]
        if reward_mode == "revenue":
            self.reward_range = (0.0, PRICIEST / 1000)  # type: ignore[misc]
        elif reward_mode == "paper":
            self.reward_range = (WORST_RETURN, BEST_RETURN)  # type: ignore[misc]
        self.rng = random.Random(0)
        self._start(random.Random(0), 0)

    def _start(self, rng: random.Random, index: int) -> str:
        self.profile = draw_profile(rng, index)
        self.traits = draw_traits(self.profile, rng)
        self.turn = 0
        self.offers = OfferTracker()
        self.buyer_state = BuyerState(
            told_budget=self.traits.reveal_budget,
            told_needs=self.traits.reveal_needs,
            told_features=self.traits.reveal_needs and self.traits.reveal_features,
        )
        self.seller_notes: dict[str, Any] = {}
        self.must_decide = False
        self.last_seller_message = ""
        self.decision: Decision | None = None
        self.final: dict[str, Any] = {}
        self.done = False
        opening = opening_line(self.profile, self.traits, rng)
        self.conversation: list[Line] = [Line("buyer", opening, opening)]
        return opening

    def setup(self, index: int) -> str:
        """The buyer's budget and personality from ``index`` (stratified, ``profile_pair``), the rest of
        its profile and its traits from the seeded ``self.rng``; return its opening line."""
        return self._start(self.rng, index)

    def step(self, action: str | None) -> StepResult:
        raise RuntimeError("car-dealer needs its buyer partner: use `await task.astep(action)`")

    def buyer_messages(self) -> list[dict[str, str]]:
        """The chat a model buyer sees: its profile as the system prompt, the seller as the user."""
        messages = [
            {"role": "system", "content": buyer_system_prompt(self.profile)},
            {"role": "user", "content": "(You walk into the dealership and a salesperson comes over.)"},
        ]
        for line in self.conversation:
            if line.speaker == "buyer":
                messages.append({"role": "assistant", "content": line.raw})
            else:
                messages.append({"role": "user", "content": line.raw or "(The salesperson says nothing.)"})
        if self.must_decide:
            messages.append({"role": "user", "content": f"(The salesperson needs an answer.) {MUST_DECIDE}"})
        return messages

    async def astep(self, action: str | None) -> StepResult:
        if self.done:
            raise RuntimeError("step() called on a finished car-dealer episode")
        if not isinstance(action, str):
            action = None  # e.g. an ``Invalid`` passed straight from ``parse``
        self.turn += 1
        at_cap = self.turn >= MAX_TURNS
        seller = action or ""
        self.conversation.append(Line("seller", seller, seller))
        self.last_seller_message = seller
        if seller:
            self.offers.update(seller, self.profile)
        if action is None and not at_cap:
            self.conversation.append(Line("buyer", "...?", "...?"))
            return StepResult("...?", 0.0, False, True, self._step_info())
        self.must_decide = at_cap
        messages = self.buyer_messages()
        raw = await self.ask("buyer", messages)
        visible, decision = split_decision(raw)
        if decision is None and at_cap:
            retry = [
                *messages,
                {"role": "assistant", "content": raw},
                {"role": "user", "content": MUST_DECIDE},
            ]
            again = await self.ask("buyer", retry)
            shown, decision = split_decision(again)
            raw, visible = f"{raw}\n{again}", "\n".join(t for t in (visible, shown) if t)
        self.conversation.append(Line("buyer", visible, raw))
        if decision is None and not at_cap:
            return StepResult(visible or "...", 0.0, False, action is None, self._step_info())
        self.done = True
        reward = self._finish(decision)
        if not visible:
            visible = "(The buyer accepts.)" if decision and decision.accepted else "(The buyer walks away.)"
        info = {**self._step_info(), **self.final}
        if decision is None:  # the turn cap came and the buyer never decided: cut, not ended
            return StepResult(visible, reward, False, action is None, info, truncated=True)
        return StepResult(visible, reward, True, action is None, info)

    def _finish(self, decision: Decision | None) -> float:
        """Fill what the tag left out from the offers tracked, record the outcome, return the reward."""
        car = self.offers.focus
        if decision is not None:
            msrp = decision.msrp if decision.msrp is not None else (None if car is None else float(car.msrp))
            price = decision.price
            if decision.accepted and price is None:
                price = self.offers.price(car) if self.offers.price(car) is not None else msrp
            decision = Decision(decision.accepted, msrp, price if decision.accepted else None)
        self.decision = decision
        reward = decision_reward(decision, self.profile.budget, self.reward_mode)
        self.final = {
            "decision": "none" if decision is None else decision.label,
            "msrp": None if decision is None else decision.msrp,
            "price": None if decision is None else decision.price,
        }
        return reward

    def _step_info(self) -> dict[str, Any]:
        car = self.offers.focus
        return {
            "turn": self.turn,
            "car": None if car is None else car.name,
            "quoted": self.offers.price(car),
        }

    def parse(self, raw: str) -> Parsed:
        """The seller's message (``read_message``): text-style models trained on whole dialogues go on
        writing the buyer's side, which is cut off; a label or marker line is dropped."""
        return read_message(raw)

    def final_line_instruction(self) -> str:
        return (
            f"Reply with only your next message to the customer, as plain text of at most "
            f"{MAX_MESSAGE_CHARS:,} characters; never write the customer's lines. If you write anything "
            f"before the message, start the message on a line of this form:\n{self.answer_example}"
        )

    def invalid_note(self, reason: str, detail: str = "") -> str:
        why = Invalid(reason, detail).explain()
        return (
            f"(Your last message was not delivered: {why}. Reply with your message to the customer only, "
            f"at most {MAX_MESSAGE_CHARS:,} characters.)"
        )

    @property
    def success(self) -> bool:
        return self.decision is not None and self.decision.accepted

    def episode_info(self) -> dict[str, Any]:
        car = self.offers.focus
        return {
            "profile": self.profile.to_dict(),
            "buyer_traits": self.traits.to_dict(),
            "decision": self.final.get("decision", "none"),
            "msrp": self.final.get("msrp"),
            "price": self.final.get("price"),
            "car": None if car is None else {"brand": car.brand, "model": car.model, "msrp": car.msrp},
            "turns": self.turn,
            "reward_mode": self.reward_mode,
            "buyer_reason": self.buyer_state.reason,  # set by the built-in buyer only
            "buyer_lies": list(self.buyer_state.lies),  # false claims the built-in buyer caught
        }

    def options(self) -> dict[str, Any]:
        return {"reward_mode": self.reward_mode}

    def format_action(self, action: str) -> str:
        return f"Seller: {action}"

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text":
            history = [
                Segment(s.kind, f"Buyer: {s.text}", s.raw) if s.kind == "observation" else s for s in history
            ]
        return super().render(history, style)

    def system_prompt(self) -> str:
        inventory = "\n".join(f"- {car.describe()}" for car in CATALOG)
        return (
            "You are a salesperson at a car dealership. A customer has just walked in. Find out what they "
            "want (brand, body type, features, budget), recommend a car from the inventory below by its "
            "exact model name, tell them its features and price, and negotiate a sale. Your goal is to "
            "close a sale at the best price the customer will accept. The customer has a personality of "
            "their own and decides when to buy or walk away; they know this inventory list, so a wrong "
            "feature or list price costs you their trust. The conversation ends after "
            f"{MAX_TURNS} of your messages at the latest.\n"
            f"Inventory (MSRP in US dollars):\n{inventory}\n" + self.final_line_instruction()
        )


def measure_policy(
    policy: str | Policy = "behavior", episodes: int = 2000, reward_mode: str = "sale"
) -> dict[str, float]:
    """Play a scripted seller (a name in ``CarDealer.policies`` or a policy function) against the
    built-in buyer through ``rollout`` for episodes 0..episodes-1 with the seeds of ``lmrl run --seed 0``
    (no I/O). Returns the success rate, mean and std of the return in ``reward_mode``, the mean return
    in every mode (``mean_sale``, ``mean_paper``, ``mean_revenue``, from the same decisions), and mean
    and std of the length. The ``avg`` anchors are ``measure_policy("behavior", 2000)`` (about 3 s)."""
    seeds = [(derive_seed(0, CarDealer.name, index, 0), index) for index in range(episodes)]
    played = play_policy(CarDealer(reward_mode=reward_mode), policy, seeds)
    by_mode = {mode: [_episode_reward(e.info, mode) for e in played] for mode in REWARD_MODES}
    return {
        **episode_stats(played),
        **{f"mean_{mode}": statistics.fmean(rewards) for mode, rewards in by_mode.items()},
    }


def _episode_reward(info: dict[str, Any], mode: str) -> float:
    """The reward a finished episode's decision (``episode_info``) earns in ``mode``."""
    if info["decision"] == "none":
        return 0.0
    decision = Decision(info["decision"] == "accepted", info["msrp"], info["price"])
    return decision_reward(decision, info["profile"]["budget"], mode)
