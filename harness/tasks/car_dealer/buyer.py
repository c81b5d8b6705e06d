"""Car Dealer's built-in buyer (role ``buyer``, ``scripted/buyer``): rules over the seller's messages.

See ``buyer_policy`` for how it talks, weighs cars, haggles and decides, and ``check_claims`` for how
it holds the seller to the catalog: it knows the dealership's published inventory, so a claimed
feature the car lacks or a wrong list price is a lie; it says so, trusts the seller less (haggles
harder), counts a strike, and walks away after ``LIES_TOLERATED`` lies.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lmrl.tasks.car_dealer.catalog import (
    GREETINGS,
    HOSTILE,
    TONE,
    Car,
    Profile,
    dollars,
    feature_phrase,
    wanted_car,
)
from lmrl.tasks.car_dealer.text import (
    DECISION_FORMAT,
    find_cars,
    find_features,
    find_money,
    format_decision,
)

if TYPE_CHECKING:
    from lmrl.tasks.car_dealer.env import CarDealer


@dataclass(frozen=True, slots=True)
class BuyerTraits:
    """Hidden knobs of the built-in buyer, drawn at reset with the profile (personality shifts them)."""

    patience: int  # seller messages before the buyer decides on what it has
    max_strikes: int  # poor offers tolerated before walking away
    haggle_rounds: int  # counter-offers made before accepting a price within reach
    first_cut: float  # first counter = price * (1 - first_cut)
    raise_frac: float  # each later counter closes this fraction of the gap to the seller's price
    flexible: bool  # accepts a car matching only the brand or only the type
    feature_tolerance: int  # wanted features it may go without
    reveal_needs: bool  # says brand and type in the opening line
    reveal_features: bool
    reveal_budget: bool
    budget_shade: float  # states budget * shade when asked (hagglers understate)
    questions: int  # general questions (warranty, colors, ...) it asks about a car before talking price
    stall_p: float  # chance per haggling turn of "let me think about it" instead of a counter
    closing_question: bool  # asks about taxes and fees before closing a deal

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def draw_traits(profile: Profile, rng: random.Random) -> BuyerTraits:
    p = profile.personality
    if p in HOSTILE:
        patience, strikes, haggle, questions = rng.randint(18, 28), 3, rng.randint(3, 6), rng.randint(2, 3)
    elif p in ("polite", "respectful"):
        patience, strikes, haggle, questions = rng.randint(24, 38), 4, rng.randint(3, 5), rng.randint(3, 4)
    elif p == "uncommunicative":
        patience, strikes, haggle, questions = rng.randint(20, 32), 3, rng.randint(3, 5), rng.randint(1, 3)
    elif p == "talkative":
        patience, strikes, haggle, questions = rng.randint(26, 40), 4, rng.randint(3, 5), rng.randint(4, 6)
    else:  # sarcastic
        patience, strikes, haggle, questions = rng.randint(22, 34), 3, rng.randint(3, 6), rng.randint(2, 4)
    quiet = p == "uncommunicative"
    return BuyerTraits(
        patience=patience,
        max_strikes=strikes,
        haggle_rounds=haggle,
        first_cut=round(rng.uniform(0.04, 0.12), 3),
        raise_frac=round(rng.uniform(0.2, 0.5), 3),
        flexible=rng.random() < 0.6,
        feature_tolerance=rng.choice((0, 1, 1, 2, 2)),
        reveal_needs=rng.random() < (0.2 if quiet else 0.7),
        reveal_features=rng.random() < (0.1 if quiet else 0.3),
        reveal_budget=rng.random() < (0.0 if quiet else 0.1),
        budget_shade=round(rng.choice((1.0, 1.0, rng.uniform(0.8, 0.95))), 3),
        questions=questions,
        stall_p=round(rng.uniform(0.05, 0.45), 3),
        closing_question=rng.random() < 0.6,
    )


def _voice(task: CarDealer, rng: random.Random, text: str, tone: bool = True) -> str:
    prefixes, suffixes = TONE[task.profile.personality]
    if tone and prefixes[0] and rng.random() < 0.35:
        prefix = rng.choice(prefixes)
        # "Look, that's too much." but "Ugh. That's too much."
        text = prefix + (
            text[0].lower() + text[1:] if prefix.endswith(", ") and not text.startswith("I ") else text
        )
    if tone and rng.random() < 0.2:
        text += rng.choice(suffixes)
    return text.strip()


def opening_line(profile: Profile, traits: BuyerTraits, rng: random.Random) -> str:
    """The buyer's first words: what it wants, as much as its personality reveals."""
    parts = []
    if traits.reveal_needs:
        parts.append(f"I'm looking for {wanted_car(profile)}")
        if traits.reveal_features:
            parts[-1] += f" with {feature_phrase(profile.features)}"
        parts[-1] += "."
    else:
        parts.append(rng.choice(("I need a car.", "I'm just looking.", "I want to buy a car.")))
    if traits.reveal_budget:
        parts.append(f"My budget is {dollars(round(profile.budget * traits.budget_shade, -3))}.")
    greeting = GREETINGS[profile.personality]
    return greeting + " ".join(parts)


@dataclass
class BuyerState:
    car: str | None = None  # the model the buyer is weighing
    counter: float | None = None  # the buyer's last counter-offer on it
    rounds: int = 0  # counter-offers made on it
    strikes: int = 0  # poor offers so far (all cars)
    asked: set[str] = field(default_factory=set)  # "model/feature" questions asked
    price_asks: int = 0
    told_budget: bool = False
    told_needs: bool = False
    told_features: bool = False
    questions: list[str] = field(default_factory=list)  # general questions asked so far (by topic)
    awaiting: str | None = None  # what the buyer's last line asked ("feature", "question", "price")
    reason: str | None = None  # why it decided as it did (set with the decision)
    closing_asked: bool = False
    lies: list[str] = field(default_factory=list)  # the seller's false claims caught so far, in words
    trust: float = 1.0  # 1 - TRUST_LOSS per lie; a wary buyer cuts its counter-offers deeper
    open_minded: bool = False  # told the dealer lacks its exact pick, it settled for brand or type


# General questions the built-in buyer asks about a car (topic, question); the behaviour seller answers.
BUYER_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("warranty", "What kind of warranty does it come with?"),
    ("economy", "What's the fuel economy like?"),
    ("colors", "What colors does it come in?"),
    ("safety", "How does it do on safety ratings?"),
    ("stock", "Do you have one on the lot right now?"),
    ("drive", "Can I take it for a test drive first?"),
)
_SMALL_TALK_ANSWERS: tuple[str, ...] = ("Sure.", "Maybe later.", "I don't know, we'll see.", "Not really.")
_SMALL_TALK_NODS: tuple[str, ...] = ("Okay.", "Fine.", "Alright.")


def _small_talk_reply(message: str, rng: random.Random) -> str:
    return rng.choice(_SMALL_TALK_ANSWERS if "?" in message else _SMALL_TALK_NODS)


_ASKS_BUDGET = re.compile(r"\b(?:budget|spend|price range|afford|how much (?:are|were) you)\b", re.I)
_ASKS_NEEDS = re.compile(
    r"\b(?:looking for|what (?:kind|type|sort)|prefer|brand|help you|what brings you|in mind)\b", re.I
)
_NOT_IN_STOCK = re.compile(r"\bwe\s+(?:don't|do not)\s+(?:have|carry|stock|sell)\b", re.I)
BUYER_OPEN_MINDED_P = 0.85  # chance that a buyer told its exact pick is not available settles for less
_ASKS_FEATURES = re.compile(r"\b(?:features?|must[\s-]?haves?|important to you|options)\b", re.I)


def _acceptable(task: CarDealer, car: Car) -> bool:
    """Brand and type match, or one of them for a flexible buyer (or one told the lot lacks its pick)."""
    profile, flexible = task.profile, task.traits.flexible or task.buyer_state.open_minded
    brand, kind = car.brand == profile.brand, profile.type in car.types
    return (brand and kind) or (flexible and (brand or kind))


def _missing_features(task: CarDealer, car: Car) -> tuple[list[str], list[str]]:
    """(features missing or left unanswered after asking, features not yet discussed). A feature the
    seller talked about is judged by the catalog, whatever the seller claimed."""
    claims = task.offers.claims.get(car.model, {})
    missing, unknown = [], []
    for f in task.profile.features:
        if f in claims:
            if f not in car.features:
                missing.append(f)
        elif f"{car.model}/{f}" in task.buyer_state.asked:
            missing.append(f)  # asked, and the seller dodged
        else:
            unknown.append(f)
    return missing, unknown


LIES_TOLERATED = 2  # false claims the buyer puts up with: the second one ends the conversation
TRUST_LOSS = 0.5  # trust lost per lie
WARY_CUT = 0.1  # extra first-counter cut at zero trust (scaled by 1 - trust)
LIST_PRICE_SLACK = 0.01  # a stated list price within 1% of the catalog MSRP is not a lie


def check_claims(task: CarDealer) -> list[str]:
    """The false claims in the seller's latest message, checked against the catalog, as the buyer
    would call them out: a feature the car lacks said to be there, or a list price above its MSRP.
    (Understating is not held against the seller: a lower "list price" is read as an offer.)"""
    found = []
    for claim in task.offers.last_claims:
        car = claim.car
        if claim.feature is not None:
            if claim.present and claim.feature not in car.features:
                found.append(f"the {car.model} doesn't have {feature_phrase([claim.feature])}")
        elif claim.value is not None and claim.value > car.msrp * (1 + LIST_PRICE_SLACK):
            found.append(f"the {car.model} lists at {dollars(car.msrp)}, not {dollars(claim.value)}")
    return list(dict.fromkeys(found))


def _decide(task: CarDealer, rng: random.Random, car: Car | None, price: float | None) -> str:
    """The final line with its tag: accept the current offer if it is good enough, else walk away.
    Records why in ``task.buyer_state.reason`` (dishonest / no car / wrong car / missing features /
    price)."""
    profile, traits, state = task.profile, task.traits, task.buyer_state
    if len(state.lies) >= LIES_TOLERATED:
        state.reason = "dishonest"
    elif car is None:
        state.reason = "no car"
    elif not _acceptable(task, car):
        state.reason = "wrong car"
    elif len(_missing_features(task, car)[0]) > traits.feature_tolerance:
        state.reason = "missing features"
    elif (car.msrp if price is None else price) > min(profile.budget, car.msrp):
        state.reason = "price"
    else:
        state.reason = "deal"
        price = car.msrp if price is None else price
        line = rng.choice(("Alright, you've got a deal.", "Fine, I'll take it.", "Okay, let's do it."))
        return f"{_voice(task, rng, line)}\n{format_decision(True, car.msrp, price)}"
    return _walk_away(task, rng, car)


def _walk_away(task: CarDealer, rng: random.Random, car: Car | None) -> str:
    line = rng.choice(("I'm going to pass.", "No deal. I'm leaving.", "I'll look somewhere else."))
    return f"{_voice(task, rng, line)}\n{format_decision(False, None if car is None else car.msrp)}"


def buyer_policy(task: CarDealer, rng: random.Random) -> str:
    """The built-in buyer: rules over the seller's latest message and the offers tracked so far.

    It answers questions about its budget, needs and features, weighs the car under discussion (brand
    and type must match, or just one of them for a flexible buyer or one told the lot lacks its pick;
    it asks about each wanted feature the seller has not mentioned and tolerates a few missing), asks
    a few general questions (warranty, colors, ...), asks for the price, then haggles: its first
    counter is a cut below ``min(price, budget, MSRP)`` and later ones close part of the gap; now and
    then it stalls ("let me think about it"). It accepts a price at or below its last counter, or any
    price within ``min(budget, MSRP)`` once its haggling rounds are spent (some buyers first ask about
    taxes and fees); it never pays more than its budget or the MSRP. Small talk gets a short answer and
    leaves the offer standing. Poor offers (wrong car, missing features, prices it cannot reach after
    haggling) are strikes; at ``max_strikes``, when its patience runs out, or at the turn cap it
    decides on what is on the table. It checks every feature and list price the seller states against
    the catalog (``check_claims``): a lie is called out, costs trust (deeper counter-offers) and a
    strike, and at ``LIES_TOLERATED`` lies (or the last strike) it walks away. Personality picks the
    tone words and shifts patience, haggling and curiosity (``draw_traits``); the rest is drawn from
    ``rng`` (deterministic per episode).
    """
    profile, traits, state = task.profile, task.traits, task.buyer_state
    message = task.last_seller_message
    car = task.offers.focus
    if car is not None and car.model != state.car:
        state.car, state.counter, state.rounds, state.price_asks = car.model, None, 0, 0
    price = task.offers.price(car)
    if task.must_decide or task.turn >= traits.patience:
        return _decide(task, rng, car, price)
    awaiting, state.awaiting = state.awaiting, None
    lies = check_claims(task)
    if lies:
        # Caught lying: say so, trust the seller less, count a strike; walk away at LIES_TOLERATED.
        state.lies += lies
        state.trust = max(0.0, 1.0 - TRUST_LOSS * len(state.lies))
        state.strikes += 1
        callout = rng.choice(("That's not true: ", "Hold on, I checked your inventory list: "))
        callout += " and ".join(lies) + "."
        if len(state.lies) >= LIES_TOLERATED or state.strikes >= traits.max_strikes:
            state.reason = "dishonest"
            return f"{callout} " + _walk_away(task, rng, car)
        state.awaiting = "lie"
        return _voice(task, rng, f"{callout} Don't lie to me.")

    notes = []
    asks_budget = bool(_ASKS_BUDGET.search(message))
    if asks_budget and not state.told_budget:
        state.told_budget = True
        notes.append(f"My budget is about {dollars(round(profile.budget * traits.budget_shade, -3))}.")
    if car is None:
        wants = wanted_car(profile)
        if not state.told_needs:
            state.told_needs = True
            notes.append(f"I want {wants}.")
        elif _ASKS_NEEDS.search(message):
            notes.append(f"Like I said, {wants}.")
        if _ASKS_FEATURES.search(message):
            state.told_features = True
            notes.append(f"I'd like {feature_phrase(profile.features)}.")
        if not notes:
            if message:
                notes.append(_small_talk_reply(message, rng))
            notes.append(rng.choice(("So what do you have for me?", "Do you have anything that fits?")))
        return _voice(task, rng, " ".join(notes))
    if _NOT_IN_STOCK.search(message) and not state.open_minded:
        state.open_minded = rng.random() < BUYER_OPEN_MINDED_P
    informative = bool(find_cars(message) or find_money(message) or find_features(message))
    if not informative and awaiting is None and not notes:
        # Small talk (test drives, financing, ...): answer briefly, keep any offer on the table.
        notes.append(_small_talk_reply(message, rng))
        if state.counter is not None:
            notes.append(f"So, can you do {dollars(state.counter)}?")
        elif price is not None and rng.random() < 0.5:
            notes.append(f"But {dollars(price)} is a lot of money.")
        return _voice(task, rng, " ".join(notes))

    def strike(complaint: str) -> str:
        state.strikes += 1
        if state.strikes >= traits.max_strikes:
            return _decide(task, rng, car, price)
        return _voice(task, rng, " ".join([*notes, complaint]))

    if not _acceptable(task, car):
        return strike(f"The {car.model} isn't what I'm looking for. I want {wanted_car(profile)}.")
    missing, unknown = _missing_features(task, car)
    if len(missing) > traits.feature_tolerance:
        return strike(f"I really need {feature_phrase(missing)}. Do you have something else?")
    fresh = [f for f in unknown if f"{car.model}/{f}" not in state.asked]
    if fresh:
        feature = fresh[0]
        state.asked.add(f"{car.model}/{feature}")
        state.awaiting = "feature"
        notes.append(f"Does the {car.model} have {feature_phrase([feature])}?")
        return _voice(task, rng, " ".join(notes))
    if len(state.questions) < traits.questions:
        topic, question = rng.choice([q for q in BUYER_QUESTIONS if q[0] not in state.questions])
        state.questions.append(topic)
        state.awaiting = "question"
        if topic == "economy" and "electric" in car.types:
            question = "What's the range on a full charge?"
        notes.append(question)
        return _voice(task, rng, " ".join(notes))
    if price is None:
        state.price_asks += 1
        if state.price_asks <= 2:
            state.awaiting = "price"
            notes.append(rng.choice((f"How much is the {car.model}?", "What's the price?", "How much?")))
            return _voice(task, rng, " ".join(notes))
        price = float(car.msrp)  # the seller dodged twice: the sticker price it is
    reservation = min(profile.budget, car.msrp)
    met = state.counter is not None and price <= state.counter
    if met or (price <= reservation and state.rounds >= traits.haggle_rounds):
        if traits.closing_question and not state.closing_asked:
            state.closing_asked, state.awaiting = True, "closing"
            notes.append(rng.choice(("That sounds close.", "Hmm, that could work.")))
            notes.append("Does that price include taxes and fees?")
            return _voice(task, rng, " ".join(notes))
        return _decide(task, rng, car, price)
    if state.counter is not None and awaiting is None and rng.random() < traits.stall_p:
        state.awaiting = "stall"
        notes.append(
            rng.choice(("Hmm, let me think about it.", "I need a minute to think.", "I'm not sure yet."))
        )
        return _voice(task, rng, " ".join(notes))
    target = min(price, reservation)
    if state.counter is None:
        counter = target * (1 - traits.first_cut - WARY_CUT * (1 - state.trust))
    else:
        counter = state.counter + (target - state.counter) * traits.raise_frac
    counter = min(float(round(counter, -2)), reservation)
    state.rounds += 1
    state.counter = counter
    if price > reservation and state.rounds > traits.haggle_rounds:
        return strike(f"That's more than I can pay. {dollars(counter)} is as high as I go.")
    line = rng.choice(
        (
            f"That's too much. Can you do {dollars(counter)}?",
            f"I was thinking more like {dollars(counter)}.",
            f"Would you take {dollars(counter)} for it?",
        )
    )
    return _voice(task, rng, " ".join([*notes, line]))


def buyer_system_prompt(profile: Profile) -> str:
    """What a model playing the buyer is told: the profile line and the exact decision format."""
    return (
        "You are a customer at a car dealership, talking with a salesperson. Play this character:\n"
        f"{profile.line()}\n"
        "Stay in character (your personality sets your tone). Tell the salesperson what you want when "
        "asked, ask about the features you care about, and haggle over the price. You can also walk away. "
        "Never agree to pay more than your budget. Keep each reply to a few sentences.\n"
        "When you have made up your mind, end your reply with exactly one decision line, either\n"
        f"{DECISION_FORMAT[0]}\nor\n{DECISION_FORMAT[1]}\n"
        "where M is the MSRP (list price) of the car you discussed and P is the price you agreed to pay, "
        "e.g. Output: Decision=Accept MSRP=$35,000 Buy Price=$32,000. Write the line only once you "
        "have decided; the conversation ends with it."
    )
