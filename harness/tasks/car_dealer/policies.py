"""Car Dealer's scripted sellers (``scripted/random``, ``scripted/behavior``, ``scripted/overprice``).

``behavior`` stands in for the paper's dataset-generating sellers; ``overprice`` is the reward exploit the
default reward must not pay for (pitch the priciest car, never come down, never sell).
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lmrl.tasks.car_dealer.catalog import CATALOG, Car, dollars, feature_phrase, wanted_car_words
from lmrl.tasks.car_dealer.text import (
    find_brands,
    find_features,
    find_money,
    find_types,
    sentence_at,
)

if TYPE_CHECKING:
    from lmrl.tasks.car_dealer.env import CarDealer


# --- scripted sellers ----------------------------------------------------------------------------
_RANDOM_LINES: tuple[str, ...] = (
    "Welcome in! How can I help you today?",
    "What's your budget?",
    "Have you considered the {car}? It's priced at {price}.",
    "The {car} is a great choice, and it has {feature}.",
    "I can let the {car} go for {price}.",
    "Would you like to take the {car} for a test drive?",
    "This one is very popular. {price} and it's yours.",
    "Let me check with my manager.",
)


def random_policy(task: CarDealer, rng: random.Random) -> str:
    """Random sales lines about a random catalog car at a random price (70-120% of its MSRP)."""
    car = rng.choice(CATALOG)
    line = rng.choice(_RANDOM_LINES)
    price = round(car.msrp * rng.uniform(0.7, 1.2), -2)
    feature = feature_phrase([rng.choice(car.features)])
    return line.format(car=car.name, price=dollars(price), feature=feature)


_COUNTER_WORDS = re.compile(
    r"\b(?:can you do|how about|would you take|thinking more like|as high as|offer|i'?ll pay)\b", re.I
)
_TOO_MUCH = re.compile(
    r"\b(?:too (?:much|expensive|high|pricey)|more than I|over my budget|cheaper|a lot of money)\b", re.I
)
_WANTS_OTHER = re.compile(
    r"\b(?:isn't what|not what I|something else|another (?:one|car)|anything else|different)\b", re.I
)
_ASKS_PRICE = re.compile(r"\b(?:how much|what's the price|price\?|cost\?)", re.I)
_SMALL_TALK: tuple[str, ...] = (
    "Would you like to take it for a test drive? It handles beautifully.",
    "It also comes with our standard warranty and free maintenance for the first year.",
    "We have a few colors in stock. Do you have a favorite?",
    "We can also help you with financing if you need it.",
    "Honestly, it's one of the most popular cars on our lot.",
)
_DISCOVERY_TALK: tuple[str, ...] = (
    "What will you mainly use the car for?",
    "Is this your first time buying from us?",
    "Will you be trading in your current car?",
    "How soon are you hoping to drive something home?",
)
# The behaviour seller's answers to the built-in buyer's general questions (no prices or features).
_ANSWERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"warranty", re.I), "It comes with a full three-year warranty, and roadside assistance."),
    (re.compile(r"fuel|economy|range|mileage|mpg", re.I), "It's one of the most efficient in its class."),
    (re.compile(r"colou?rs?\b", re.I), "We have it in white, black, silver and a deep blue."),
    (re.compile(r"safety", re.I), "It earned top marks in the latest crash tests."),
    (re.compile(r"on the lot|in stock", re.I), "Yes, we have two on the lot right now."),
    (re.compile(r"test drive", re.I), "Of course! Here are the keys. How did it feel?"),
    (
        re.compile(r"taxes|fees", re.I),
        "Taxes and registration are extra, but there are no hidden dealer fees.",
    ),
)

# Behaviour-seller knobs, tuned against the built-in buyer toward the paper's dataset statistics
# (success 0.53, mean return 0.562, mean length 16.5): a private floor as a fraction of MSRP and a
# concession step as a fraction of MSRP (both drawn per episode), the chance per episode of pitching
# above the stated budget, the chance of asking the budget, and the chance per turn of small talk.
BEHAVIOR_FLOOR = (0.84, 0.97)
BEHAVIOR_STEP = (0.006, 0.015)
BEHAVIOR_UPSELL_P = 0.25
BEHAVIOR_ASK_BUDGET_P = 0.85
BEHAVIOR_CHAT = (0.3, 0.7)
BEHAVIOR_MANAGER_P = 0.45  # chance, when conceding, of first "checking with my manager" (twice at most)


@lru_cache(maxsize=4096)
def _read_buyer_line(text: str) -> tuple[str | None, str | None, tuple[str, ...], float | None]:
    """(last brand, last type, wanted features, stated budget) in one buyer line."""
    brands, kinds = find_brands(text), find_types(text)
    wanted = tuple(f for _, f, present in find_features(text) if present)
    budget = None
    for mention in find_money(text):
        if mention.kind == "price" and re.search(r"\bbudget\b", sentence_at(text, mention.start), re.I):
            budget = mention.value
    return (brands[-1] if brands else None, kinds[-1] if kinds else None, wanted, budget)


def _read_buyer(task: CarDealer) -> dict[str, Any]:
    """What the buyer has said so far (the seller's view; tags already stripped)."""
    brand = kind = budget = None
    wanted: list[str] = []
    for line in task.conversation:
        if line.speaker != "buyer":
            continue
        line_brand, line_kind, line_wanted, line_budget = _read_buyer_line(line.text)
        brand, kind = line_brand or brand, line_kind or kind
        budget = line_budget if line_budget is not None else budget
        wanted += [f for f in line_wanted if f not in wanted]
    return {"brand": brand, "type": kind, "features": wanted, "budget": budget}


def _exact_match_exists(needs: dict[str, Any]) -> bool:
    return any(c.brand == needs["brand"] and needs["type"] in c.types for c in CATALOG)


def _choose_car(rng: random.Random, needs: dict[str, Any], notes: dict[str, Any]) -> Car:
    """The stated brand and type if the lot has it (else the type, else the brand), not pitched before;
    the priciest one the seller's floor fits in the budget, preferring wanted features; or, for an
    upselling seller, the cheapest one above the budget."""
    brand, kind, budget, wanted = needs["brand"], needs["type"], needs["budget"], needs["features"]
    pools = [
        [c for c in CATALOG if c.brand == brand and kind in c.types],
        [c for c in CATALOG if kind is not None and kind in c.types],
        [c for c in CATALOG if c.brand == brand],
        list(CATALOG),
    ]
    pool = next(p for p in ([c for c in p if c.model not in notes["pitched"]] for p in pools) if p)
    if budget is None:
        return rng.choice(pool)
    if notes["upsell"]:
        above = sorted((c for c in pool if c.msrp > budget), key=lambda c: c.msrp)
        if above:
            return above[0]
    within = [c for c in pool if c.msrp * notes["floor"] <= budget]
    if within:
        within.sort(key=lambda c: (-sum(f in c.features for f in wanted), -c.msrp))
        return within[0] if len(within) == 1 or rng.random() < 0.75 else within[1]
    return min(pool, key=lambda c: c.msrp)


def _pitch(car: Car, rng: random.Random, wanted: list[str]) -> str:
    shown = [f for f in car.features if f in wanted] or list(car.features[:2])
    shown = shown[: rng.randint(1, len(shown))]
    opener = rng.choice(("I'd recommend the", "You'll love the", "Take a look at the", "We have a great"))
    used = f"{car.year} pre-owned " if car.condition != "new" else ""
    return (
        f"{opener} {used}{car.name}. It comes with {feature_phrase(shown)}, "
        f"and it lists at {dollars(car.msrp)}."
    )


def behavior_policy(task: CarDealer, rng: random.Random) -> str:
    """A plausible salesperson (our stand-in for the paper's dataset-generating seller).

    It greets and asks what the buyer wants, asks the budget and the must-have features (most of the
    time), pitches a catalog car by ``_choose_car`` at its MSRP, answers feature questions truthfully
    from the catalog and general questions with stock answers, and haggles: it accepts a counter-offer
    no lower than both its private floor and one concession step below its current price, otherwise
    it concedes one step (never below the floor); now and then it makes small talk. It reads only the
    conversation, never the hidden profile; its per-episode memory is ``task.seller_notes``.
    """
    notes = task.seller_notes
    if not notes:
        notes.update(
            floor=rng.uniform(*BEHAVIOR_FLOOR),
            step=rng.uniform(*BEHAVIOR_STEP),
            upsell=rng.random() < BEHAVIOR_UPSELL_P,
            chat=rng.uniform(*BEHAVIOR_CHAT),
            ask_budget=rng.random() < BEHAVIOR_ASK_BUDGET_P,
            asked=set(),
            manager=0,
            pitched=[],
            car=None,
            price=None,
        )
    needs = _read_buyer(task)
    last = next(line.text for line in reversed(task.conversation) if line.speaker == "buyer")
    car: Car | None = notes["car"]
    asked: set[str] = notes["asked"]

    def pitch() -> str:
        chosen = _choose_car(rng, needs, notes)
        notes["car"], notes["price"] = chosen, float(chosen.msrp)
        notes["pitched"].append(chosen.model)
        lead = ""
        if needs["brand"] and needs["type"] and not _exact_match_exists(needs) and "no match" not in asked:
            asked.add("no match")
            lead = f"I'm afraid we don't have {wanted_car_words(needs['brand'], needs['type'])} on the lot. "
        return lead + _pitch(chosen, rng, needs["features"])

    if car is None:
        if (needs["brand"] is None or needs["type"] is None) and "needs" not in asked:
            asked.add("needs")
            return rng.choice(
                (
                    "Welcome! What kind of car are you looking for today?",
                    "Hi there! What brand and type of car do you have in mind?",
                )
            )
        if needs["budget"] is None and notes["ask_budget"] and "budget" not in asked:
            asked.add("budget")
            return rng.choice(("Great. What's your budget?", "Sure. How much are you looking to spend?"))
        if not needs["features"] and "features" not in asked and rng.random() < 0.85:
            asked.add("features")
            return "Are there any features that are important to you?"
        talk = [line for line in _DISCOVERY_TALK if line not in asked]
        if talk and rng.random() < notes["chat"]:
            asked.add(talk[0])
            return talk[0]
        return pitch()
    price: float = notes["price"]
    floor = round(car.msrp * notes["floor"], -2)
    step = round(notes["step"] * car.msrp, -2)
    if _WANTS_OTHER.search(last):
        return pitch()
    questions = [f for _, f, _ in find_features(last)] if "?" in last else []
    if questions:
        feature = questions[-1]
        if feature in car.features:
            answer = f"Yes, the {car.model} has {feature_phrase([feature])}."
        else:
            answer = f"Unfortunately the {car.model} doesn't have {feature_phrase([feature])}."
        return answer + (f" It's {dollars(price)}." if rng.random() < 0.3 else "")
    for pattern, answer in _ANSWERS:
        if pattern.search(last):
            return answer
    if _ASKS_PRICE.search(last):
        return f"The {car.model} is {dollars(price)}."
    offers = [m.value for m in find_money(last) if m.kind == "price"]
    if offers and _COUNTER_WORDS.search(last):
        counter = offers[-1]
        if counter >= max(floor, price - step):
            notes["price"] = counter
            return rng.choice(
                (f"Okay, {dollars(counter)} it is.", f"You drive a hard bargain. {dollars(counter)}.")
            )
        new = max(floor, price - step)
        if new < price and notes["manager"] < 2 and rng.random() < BEHAVIOR_MANAGER_P:
            notes["manager"] += 1
            return rng.choice(
                ("Let me check with my manager.", "I'll have to run that by my manager, one moment.")
            )
        if new >= price:
            cheaper = _choose_car(rng, {**needs, "budget": counter}, {**notes, "upsell": False})
            if cheaper.msrp * notes["floor"] <= counter and "cheaper" not in asked:
                asked.add("cheaper")
                notes["car"], notes["price"] = cheaper, float(cheaper.msrp)
                notes["pitched"].append(cheaper.model)
                return "I can't go lower on that one, but I have something more affordable. " + _pitch(
                    cheaper, rng, needs["features"]
                )
            return f"I'm sorry, {dollars(price)} is really the best I can do on the {car.model}."
        notes["price"] = new
        return rng.choice(
            (f"I can come down to {dollars(new)}.", f"How about {dollars(new)}? That's a great price.")
        )
    if _TOO_MUCH.search(last):
        new = max(floor, price - step)
        notes["price"] = new
        return f"I understand. I can do {dollars(new)} on the {car.model}."
    if rng.random() < notes["chat"]:
        return rng.choice(_SMALL_TALK)
    return f"So, shall we write up the {car.model} at {dollars(price)}?"


def overprice_policy(task: CarDealer, rng: random.Random) -> str:
    """The reward exploit: pitch the priciest car on the lot at its full (true) MSRP, every turn, with no
    discount. It never sells; the paper formula still paid it 1 - budget / MSRP per walk-away."""
    car = max(CATALOG, key=lambda c: c.msrp)
    return (
        f"You should buy the {car.name}. It comes with {feature_phrase(list(car.features[:3]))}, and it "
        f"lists at {dollars(car.msrp)}. That is the price, no discounts."
    )
