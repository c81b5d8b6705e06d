"""Car Dealer (LMRL-Gym; ``reference/lmrl-gym.md`` §5.3): the agent sells cars to a simulated buyer.

The buyer has a hidden profile drawn from the episode RNG at ``reset`` with the paper code's sets:
personality (10), preferred brand (13), body type (6), 1-4 wanted features (of 8) and a budget of
$10k/30k/50k/70k/90k. The dealership's inventory is our own catalog, ``data/car_catalog.json`` (80
cars, every brand and body type the profiles use; MSRPs are invented round numbers).

Flow

* The first observation is the buyer's opening line ("Hi, I'm looking for a Honda SUV with a backup
  camera."), worded by personality; how much it reveals varies (an uncommunicative buyer says little).
* Each agent action is one seller message: any non-empty text (a leading ``Seller:`` label is dropped
  and the reply is cut where a model starts writing the buyer's line). Empty output is invalid:
  reward 0, the buyer answers ``...?`` and the turn counts.
* The buyer (role ``buyer``, default ``scripted/buyer``) replies. When the reply carries a decision
  tag, ``Output: Decision=Accept MSRP=$M Buy Price=$P`` or ``Output: Decision=Reject MSRP=$M``, the
  environment parses it with ``parse_decision`` (tolerant of case, spacing, commas, ``k`` suffixes,
  missing ``Output:``), removes it from what the seller sees, and ends the episode with the reward.
* Cap: 50 seller messages (``max_steps``). On the 50th the buyer is told to decide now; a model buyer
  that still writes no tag is re-prompted once ("You must decide now: output the decision line"); if
  there is still none, the episode ends as a rejection with no known MSRP: reward 0 (as in the paper:
  no tag -> 0).

Reward (``reward_mode`` option; all reward comes on the final step)

* ``"fancy"`` (default, the paper code's): bought -> ``P / ((budget + M) / 2)``; not bought ->
  ``-(budget - M) / M``. The second term is the paper's and is odd: it is *positive* when the car
  discussed costs more than the budget (an over-budget pitch that fails earns up to ``1 - budget/M``)
  and strongly negative when a rich buyer walks away from a cheap car (budget $90k, M $9.5k -> -8.5).
* ``"revenue"``: ``P / 1000`` if bought, else 0 (the paper's PPO script).
* M is the tag's MSRP; when the tag has none, the catalog MSRP of the car under discussion; when no car
  was discussed, reward 0. An acceptance without a price uses the seller's last quote for that car, else
  M. Prices in a tag below 1000 without a suffix are read as thousands ("MSRP=$35" -> 35,000).
* ``reward_range`` is the formula's range over the budgets and the catalog for prices up to
  ``max(budget, M)``: fancy ``[WORST_RETURN, BEST_RETURN]`` = [-8.47, 1.84]; revenue [0, 117].
* Success = the buyer bought. ``episode_info``: the profile, the built-in buyer's traits, the decision
  (``accepted`` / ``rejected`` / ``none``), MSRP, price, the car under discussion, turns, reward mode;
  ``sale_price(episode)`` reads the price back for judges.

Normalization anchors (the paper printed none for this task but min = 0 in Table 5)

* ``min = 0.0``: the paper's only Car Dealer anchor, and the return of a seller that never gets a
  decision (no tag -> 0), i.e. the do-nothing baseline. The true floor of the fancy formula is far
  lower (``WORST_RETURN``: a $90k buyer rejecting the cheapest car, about -8.5); using it would squeeze
  every real policy into 45-55 of the normalized scale, so we do not. Returns below 0 (a buyer
  walking away from a car cheaper than its budget) normalize below 0. Revenue: ``min = 0`` (no sale).
* ``avg``: the behaviour (dataset-generating) seller's mean return against the built-in buyer over
  2000 episodes, seeds 0-1999: 0.521 fancy (the paper's dataset mean is 0.562), 22.7 revenue.
  Recompute with ``measure_policy("behavior", 2000)`` (``mean_return``, ``mean_revenue``); a test pins
  both, so a change to the buyer, the seller or the catalog that moves them must update them here.
* ``max = 1.0`` (fancy): the built-in buyer never pays more than ``min(budget, M)``, so a sale scores
  ``P / ((B + M) / 2) <= 2 min(B, M) / (B + M) <= 1``, with equality only for a full-price sale of a car
  whose MSRP equals the budget; a rejection scores ``1 - B/M < 1``. So 1.0 is the per-episode supremum
  against the built-in buyer (a model buyer that overpays can exceed it). Revenue: ``max = 50.0``, the
  mean budget of the profile set (every buyer paying its whole budget).

Scripted policies: ``random`` (random sales lines about random catalog cars and prices), ``behavior``
(a plausible salesperson standing in for the paper's GPT-generated sellers: asks about needs and
budget, pitches a catalog car of the stated brand and type, answers questions truthfully, concedes in
small steps down to a private floor, sometimes upsells past the budget) and ``buyer`` (the built-in
buyer, for the ``buyer`` role; see ``buyer_policy``). Against the built-in buyer over 2000 episodes
the behaviour seller has success 0.50, mean return 0.521 (std 0.51) and mean length 15.4 (std 4.3);
the paper's dataset: 0.53, 0.562 (0.422), 16.5 (3.61). The random seller: success 0.0005, mean
return -0.67, length 6.5.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from harness.task import Anchors, InvalidTaskOption, Policy, Segment, StepResult, Style, Task
from harness.tasks import register_task

# --- the profile sets (paper code) ---------------------------------------------------------------
PERSONALITIES: tuple[str, ...] = (
    "abusive",
    "angry",
    "insulting",
    "polite",
    "respectful",
    "rude",
    "sarcastic",
    "talkative",
    "toxic",
    "uncommunicative",
)
BRANDS: tuple[str, ...] = (
    "Volkswagen",
    "Lexus",
    "Ford",
    "Mazda",
    "Hyundai",
    "Toyota",
    "Mercedes-Benz",
    "BMW",
    "Audi",
    "Subaru",
    "Honda",
    "Porsche",
    "Tesla",
)
TYPES: tuple[str, ...] = ("luxury", "sedan", "convertible", "truck", "electric", "SUV")
FEATURES: tuple[str, ...] = (
    "backup camera",
    "navigation system",
    "heated seats",
    "leather seats",
    "third-row seating",
    "blind spot monitoring",
    "sunroof",
    "Apple CarPlay",
)
BUDGETS: tuple[int, ...] = (10_000, 30_000, 50_000, 70_000, 90_000)

MAX_TURNS = 50
REWARD_MODES: tuple[str, ...] = ("fancy", "revenue")
CATALOG_PATH = Path(__file__).parent / "data" / "car_catalog.json"
MUST_DECIDE = "You must decide now: output the decision line."
DECISION_FORMAT = (
    "Output: Decision=Accept MSRP=$M Buy Price=$P",
    "Output: Decision=Reject MSRP=$M",
)
HOSTILE = frozenset({"abusive", "angry", "insulting", "rude", "toxic"})


# --- catalog -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Car:
    brand: str
    model: str
    types: tuple[str, ...]
    msrp: int
    features: tuple[str, ...]
    year: int | None = None  # set for pre-owned cars
    condition: str = "new"

    @property
    def name(self) -> str:
        return f"{self.brand} {self.model}"

    def describe(self) -> str:
        used = f"{self.year} pre-owned " if self.condition != "new" else ""
        return (
            f"{used}{self.name} ({'/'.join(self.types)}, MSRP {dollars(self.msrp)}): "
            f"{', '.join(self.features)}"
        )


@lru_cache(maxsize=4)
def load_catalog(path: str | Path = CATALOG_PATH) -> tuple[Car, ...]:
    cars = json.loads(Path(path).read_text(encoding="utf-8"))["cars"]
    return tuple(
        Car(
            brand=c["brand"],
            model=c["model"],
            types=tuple(c["types"]),
            msrp=int(c["msrp"]),
            features=tuple(c["features"]),
            year=c.get("year"),
            condition=c.get("condition", "new"),
        )
        for c in cars
    )


CATALOG: tuple[Car, ...] = load_catalog()
BY_MODEL: dict[str, Car] = {car.model: car for car in CATALOG}


def dollars(amount: float) -> str:
    return f"${amount:,.0f}"


# --- profile -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Profile:
    personality: str
    brand: str
    type: str
    features: tuple[str, ...]
    budget: int

    def line(self) -> str:
        """The paper's profile line: "Personality: X. Prefers a Brand Type with f1, f2. Budget: $N"."""
        return (
            f"Personality: {self.personality}. Prefers a {self.brand} {self.type} with "
            f"{', '.join(self.features)}. Budget: {dollars(self.budget)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "personality": self.personality,
            "brand": self.brand,
            "type": self.type,
            "features": list(self.features),
            "budget": self.budget,
        }


def draw_profile(rng: random.Random) -> Profile:
    return Profile(
        personality=rng.choice(PERSONALITIES),
        brand=rng.choice(BRANDS),
        type=rng.choice(TYPES),
        features=tuple(rng.sample(FEATURES, rng.randint(1, 4))),
        budget=rng.choice(BUDGETS),
    )


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


# --- decisions -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    msrp: float | None = None
    price: float | None = None

    @property
    def label(self) -> str:
        return "accepted" if self.accepted else "rejected"


def format_decision(accepted: bool, msrp: float | None, price: float | None = None) -> str:
    """The exact tag a buyer writes: ``Output: Decision=Accept MSRP=$35,000 Buy Price=$32,000``."""
    m = f" MSRP={dollars(msrp)}" if msrp is not None else ""
    if accepted:
        return f"Output: Decision=Accept{m} Buy Price={dollars(price if price is not None else 0)}"
    return f"Output: Decision=Reject{m}"


_VERDICT = re.compile(
    r"(?P<lead>\boutput\b[\s*_`\"']*[:=\-]?[\s*_`\"']*)?"
    r"\bdecision\b[\s*_`\"']*(?:[:=\-]|\bis\b)?[\s*_`\"']*(?:to\s+)?"
    r"(?P<verdict>accept(?:ed|s)?|reject(?:ed|s)?|declin(?:e|ed|es))\b",
    re.IGNORECASE,
)
_AMOUNT = r"\$?\s*(?P<num>\d[\d,]*(?:\.\d+)?)(?:\s*(?P<k>k\b|thousand\b|grand\b))?"
_FIELD = re.compile(
    r"(?P<key>msrp|(?:buy(?:ing)?|sale|final|purchase)[\s_-]*price|price)\b[\s*_`\"']*"
    r"(?:[:=]|\bis\b|\bof\b|\bat\b)?[\s*_`\"']*" + _AMOUNT,
    re.IGNORECASE,
)
_FIELD_LINE = re.compile(r"^[\s*_`>(\[-]*(?:msrp|buy|sale|final|purchase|price)", re.IGNORECASE)


def _tag_amount(num: str, k: str | None) -> float | None:
    try:
        value = float(num.replace(",", ""))
    except ValueError:
        return None
    if k or value < 1000:  # "32k", "32 thousand"; a bare "35" in a tag means thousands
        value *= 1000
    return value


def split_decision(text: str) -> tuple[str, Decision | None]:
    """(``text`` without any decision tags, the last tag's decision or ``None``).

    A tag is the word "decision" followed by accept/reject, optionally led by "Output:", with MSRP and
    buy-price fields on the same line or on the lines right after it, in any order and spelling.
    """
    spans: list[tuple[int, int]] = []
    decision = None
    for found in _VERDICT.finditer(text):
        if spans and found.start() < spans[-1][1]:
            continue
        accepted = found.group("verdict").lower().startswith("accept")
        start = found.start("lead") if found.group("lead") else found.start()
        # The fields: the rest of this line, then following lines that start with a field name.
        end_of_line = text.find("\n", found.end())
        region_end = len(text) if end_of_line < 0 else end_of_line
        while region_end < len(text):
            nxt = text.find("\n", region_end + 1)
            line = text[region_end + 1 : len(text) if nxt < 0 else nxt]
            if not _FIELD_LINE.match(line):
                break
            region_end = len(text) if nxt < 0 else nxt
        following = _VERDICT.search(text, found.end())
        if following is not None and following.start() < region_end:
            region_end = following.start()
        end = found.end()
        msrp = price = None
        for f in _FIELD.finditer(text, found.end(), region_end):
            value = _tag_amount(f.group("num"), f.group("k"))
            if f.group("key").lower() == "msrp":
                msrp = value if msrp is None else msrp
            else:
                price = value if price is None else price
            end = f.end()
        # Swallow decoration around the tag: "(Decision=Reject MSRP=$4)", "**Output:** ...".
        while start > 0 and text[start - 1] in "*_`([":
            start -= 1
        while end < len(text) and text[end] in "*_`)].;,":
            end += 1
        spans.append((start, end))
        decision = Decision(accepted, msrp, price if accepted else None)
    if not spans:
        return text, None
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    cleaned = ""
    for piece in pieces:  # rejoin: one line break where the tag had its own line, else one space
        if cleaned and piece:
            if cleaned.rstrip(" \t").endswith("\n") and piece.lstrip(" \t").startswith("\n"):
                piece = piece.lstrip(" \t")[1:]
            elif not cleaned[-1].isspace() and not piece[0].isspace():
                piece = " " + piece
        cleaned += piece
    cleaned = re.sub(r"[ \t]+\n", "\n", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    return cleaned.strip(), decision


def parse_decision(text: str) -> Decision | None:
    """The buyer's decision in ``text`` (the last tag wins), or ``None`` when it has not decided."""
    return split_decision(text)[1]


# --- reward --------------------------------------------------------------------------------------
def fancy_reward(bought: bool, price: float | None, budget: float, msrp: float | None) -> float:
    """Paper default: bought -> P / ((budget + M) / 2); not bought -> -(budget - M) / M; M unknown -> 0."""
    if msrp is None or msrp <= 0:
        return 0.0
    if bought:
        return 0.0 if price is None else price / ((budget + msrp) / 2)
    return -(budget - msrp) / msrp


def revenue_reward(bought: bool, price: float | None) -> float:
    """The PPO script's alternative: the sale price in $1000s, 0 without a sale."""
    return price / 1000 if bought and price is not None else 0.0


def decision_reward(decision: Decision | None, budget: float, mode: str = "fancy") -> float:
    """Reward of a final decision (``None`` = no tag at the cap -> 0)."""
    if decision is None:
        return 0.0
    if mode == "revenue":
        return revenue_reward(decision.accepted, decision.price)
    return fancy_reward(decision.accepted, decision.price, budget, decision.msrp)


CHEAPEST = min(car.msrp for car in CATALOG)
PRICIEST = max(car.msrp for car in CATALOG)
# The fancy formula's extremes over the sets and the catalog, for prices up to max(budget, M):
# worst = a $90k buyer rejecting the cheapest car; best = a $10k buyer paying the priciest car's MSRP.
WORST_RETURN = fancy_reward(False, None, max(BUDGETS), CHEAPEST)
BEST_RETURN = fancy_reward(True, PRICIEST, min(BUDGETS), PRICIEST)


# --- reading free text ---------------------------------------------------------------------------
def _name_pattern(name: str) -> str:
    """Letters as written; spaces and hyphens optional, also between letters and digits: "CR-V" also
    matches "CRV" and "cr v", "Mazda3" matches "Mazda 3", "F-150" matches "F150"."""
    parts = re.split(r"[\s-]+|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", name)
    return r"[\s-]?".join(re.escape(p) for p in parts if p)


# Model names that are also everyday words ("a perfect fit", "let's focus"): they count only when
# capitalized and not at the start of a sentence.
_WORD_MODELS = frozenset(
    {"Fit", "Focus", "Accent", "Pilot", "Explorer", "Prologue", "Atlas", "Outback", "Maverick", "Civic"}
)


def _model_key(name: str) -> str:
    return re.sub(r"[\s-]+", "", name).lower()


# One alternation of every model name, longest first; a match is identified by its normalized text.
_CAR_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    + "|".join(_name_pattern(car.model) for car in sorted(CATALOG, key=lambda c: -len(c.model)))
    + r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_BY_KEY: dict[str, Car] = {_model_key(car.model): car for car in CATALOG}
_BRAND_WORDS: dict[str, str] = {b.lower(): b for b in BRANDS} | {
    "vw": "Volkswagen",
    "mercedes": "Mercedes-Benz",
    "benz": "Mercedes-Benz",
    "merc": "Mercedes-Benz",
    "mercedes benz": "Mercedes-Benz",
    "bimmer": "BMW",
}
_BRAND_RE = re.compile(
    r"(?<![A-Za-z])("
    + "|".join(_name_pattern(w) for w in sorted(_BRAND_WORDS, key=len, reverse=True))
    + r")(?![A-Za-z])",
    re.IGNORECASE,
)
_TYPE_PATTERNS: dict[str, str] = {
    "SUV": r"suvs?|crossovers?",
    "sedan": r"sedans?|saloons?",
    "convertible": r"convertibles?|cabriolets?|roadsters?|drop[\s-]?tops?",
    "truck": r"trucks?|pick[\s-]?ups?",
    "electric": r"electric|evs?|battery[\s-]electric",
    "luxury": r"luxury",
}
_TYPE_RE = re.compile(
    r"(?<![A-Za-z])(?:" + "|".join(f"(?P<t{i}>{p})" for i, p in enumerate(_TYPE_PATTERNS.values())) + r")\b",
    re.IGNORECASE,
)
_TYPE_NAMES = list(_TYPE_PATTERNS)
_FEATURE_PATTERNS: dict[str, str] = {
    "backup camera": r"back[\s-]?up[\s-]?cam(?:era)?s?|rear[\s-]?(?:view[\s-]?)?cam(?:era)?s?"
    r"|revers(?:e|ing)[\s-]?cam(?:era)?s?",
    "navigation system": r"navigation|\bnav\b|\bgps\b|sat[\s-]?nav",
    "heated seats": r"heated(?:\s+(?:front|leather|rear))?\s+seat(?:s|ing)?|seat\s+heaters?",
    "leather seats": r"leather",
    "third-row seating": r"(?:third|3rd)[\s-]+row|(?:seven|7|eight|8)[\s-]+seat(?:s|er|ing)?",
    "blind spot monitoring": r"blind[\s-]?spot",
    "sunroof": r"sun[\s-]?roof|moon[\s-]?roof|panoramic\s+(?:glass\s+)?roof",
    "Apple CarPlay": r"car[\s-]?play",
}
_FEATURE_RE = re.compile(
    "|".join(f"(?P<f{i}>{p})" for i, p in enumerate(_FEATURE_PATTERNS.values())), re.IGNORECASE
)
_FEATURE_NAMES = list(_FEATURE_PATTERNS)
_NEGATION = re.compile(
    r"\b(?:no|not|doesn't|doesnt|does not|don't|dont|do not|didn't|lacks?|lacking|without|isn't|aren't|"
    r"won't|can't|unfortunately|neither|nor|never)\b",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(r"[.;!?\n]|,\s*but\b|\bbut\b|\band\b|\bhowever\b|\bwhile\b", re.IGNORECASE)
_MONEY_RE = re.compile(
    r"(?<![\w.])(?P<dollar>\$\s*)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s*(?P<k>k\b|thousand\b|grand\b))?(?P<word>\s*(?:dollars|bucks|usd)\b)?",
    re.IGNORECASE,
)
_PERCENT_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?:%|percent\b)", re.IGNORECASE)
_MONTHLY = re.compile(r"^\s*(?:/\s*mo|/\s*month|a month|per month|monthly|down\b|apr\b)", re.IGNORECASE)
_DISCOUNT_AFTER = re.compile(r"^\s*(?:off\b|discount|rebate|cash[\s-]?back|in savings|less\b)", re.IGNORECASE)
_DISCOUNT_BEFORE = re.compile(
    r"(?:discount of|knock(?:ed)?(?: it)? down by|take off|knock off|save you|savings of|rebate of|"
    r"reduce(?: it| the price)? by|lower(?: it| the price)? by|come down by|drop(?: it| the price)? by)"
    r"\s*(?:another|an extra|a further)?\s*$",
    re.IGNORECASE,
)
_BUDGET_WORDS = re.compile(r"\b(?:budget|afford|spend|price range)\b", re.I)


@dataclass(frozen=True, slots=True)
class MoneyMention:
    start: int
    value: float
    kind: str  # "price", "discount" (an amount off) or "percent" (a fraction off, 0.05 = 5%)


def find_cars(text: str) -> list[tuple[int, Car]]:
    """Catalog cars named in ``text``, in order of appearance (by model name; spacing/hyphens optional)."""
    return list(_find_cars(text))


@lru_cache(maxsize=1024)
def _find_cars(text: str) -> tuple[tuple[int, Car], ...]:
    found = []
    for m in _CAR_RE.finditer(text):
        car = _BY_KEY[_model_key(m.group())]
        if car.model in _WORD_MODELS:
            before = text[: m.start()].rstrip()
            if not m.group()[0].isupper() or not before or before[-1] in ".!?:":
                continue
        found.append((m.start(), car))
    return tuple(found)


def find_brands(text: str) -> list[str]:
    return [_BRAND_WORDS[re.sub(r"[\s-]+", " ", m.group(1).lower())] for m in _BRAND_RE.finditer(text)]


def find_types(text: str) -> list[str]:
    found = []
    for m in _TYPE_RE.finditer(text):
        index = int(next(k for k, v in m.groupdict().items() if v is not None)[1:])
        found.append(_TYPE_NAMES[index])
    return found


def find_features(text: str) -> list[tuple[int, str, bool]]:
    """(position, feature, present) per feature named; ``present`` is False when negated in its clause."""
    return list(_find_features(text))


@lru_cache(maxsize=1024)
def _find_features(text: str) -> tuple[tuple[int, str, bool], ...]:
    found = []
    for m in _FEATURE_RE.finditer(text):
        index = int(next(k for k, v in m.groupdict().items() if v is not None)[1:])
        before = text[max(0, m.start() - 60) : m.start()]
        breaks = list(_CLAUSE_BREAK.finditer(before))
        clause = before[breaks[-1].end() :] if breaks else before
        found.append((m.start(), _FEATURE_NAMES[index], not _NEGATION.search(clause)))
    return tuple(found)


def find_money(text: str) -> list[MoneyMention]:
    """Prices, amounts off and percentages off in free text: "$32,000", "32k", "32 thousand dollars",
    "$2,000 off", "5% off". Bare numbers (years, "CX-5", "F-150") and monthly payments are ignored."""
    return list(_find_money(text))


@lru_cache(maxsize=1024)
def _find_money(text: str) -> tuple[MoneyMention, ...]:
    found = []
    for m in _MONEY_RE.finditer(text):
        has_k = m.group("k") is not None
        if not (m.group("dollar") or has_k or m.group("word") or "," in m.group("num")):
            continue
        value = float(m.group("num").replace(",", "")) * (1000 if has_k else 1)
        if value < 100 or _MONTHLY.match(text[m.end() :]):
            continue
        after, before = text[m.end() : m.end() + 20], text[max(0, m.start() - 30) : m.start()]
        discount = _DISCOUNT_AFTER.match(after) or _DISCOUNT_BEFORE.search(before)
        found.append(MoneyMention(m.start(), value, "discount" if discount else "price"))
    for m in _PERCENT_RE.finditer(text):
        after = text[m.end() : m.end() + 20]
        if _DISCOUNT_AFTER.match(after) or _DISCOUNT_BEFORE.search(text[max(0, m.start() - 30) : m.start()]):
            found.append(MoneyMention(m.start(), float(m.group("num")) / 100, "percent"))
    return tuple(sorted(found, key=lambda x: x.start))


def _sentence_at(text: str, position: int) -> str:
    """The sentence around ``position``, with its closing punctuation."""
    start = max(text.rfind(c, 0, position) for c in ".!?\n") + 1
    ends = [i for i in (text.find(c, position) for c in ".!?\n") if i >= 0]
    return text[start : min(ends) + 1 if ends else len(text)]


def _asks_budget(text: str, position: int) -> bool:
    """A seller's amount inside a question about the budget ("Around $30k? What's your budget?")."""
    sentence = _sentence_at(text, position)
    return sentence.endswith("?") and bool(_BUDGET_WORDS.search(sentence))


def car_fit(car: Car, profile: Profile) -> int:
    """How well a car suits the buyer, as the buyer sees it: brand and type first, then affordability."""
    return (
        4 * (car.brand == profile.brand) + 4 * (profile.type in car.types) + 2 * (car.msrp <= profile.budget)
    )


@dataclass
class OfferTracker:
    """What the seller has put on the table so far, read from the seller's messages with rules.

    ``focus`` is the car under discussion: in a message naming cars, the best fit for the buyer (ties:
    the last named, as sellers end on what they propose). A price attaches to the nearest car named
    before it in the same message, else to the focus; "$2,000 off" / "5% off" lower the focus's price;
    amounts inside a question about the budget are ignored; feature claims attach like prices.
    """

    focus: Car | None = None
    prices: dict[str, float] = field(default_factory=dict)
    claims: dict[str, dict[str, bool]] = field(default_factory=dict)
    named: list[str] = field(default_factory=list)

    def price(self, car: Car | None) -> float | None:
        return None if car is None else self.prices.get(car.model)

    def update(self, text: str, profile: Profile) -> None:
        cars = find_cars(text)
        if cars:
            best = max(car_fit(car, profile) for _, car in cars)
            self.focus = [car for _, car in cars if car_fit(car, profile) == best][-1]
            for _, car in cars:
                if car.model not in self.named:
                    self.named.append(car.model)

        def owner(position: int) -> Car | None:
            before = [car for start, car in cars if start < position]
            return before[-1] if before else self.focus

        for mention in find_money(text):
            car = owner(mention.start)
            if car is None or _asks_budget(text, mention.start):
                continue
            if mention.kind == "price":
                if mention.value >= 0.3 * car.msrp:  # not a stray small amount ("a $500 fee")
                    self.prices[car.model] = mention.value
            else:
                current = self.prices.get(car.model, float(car.msrp))
                off = mention.value if mention.kind == "discount" else current * mention.value
                if 0 < off < current:
                    self.prices[car.model] = round(current - off, 2)
        for position, feature, present in find_features(text):
            car = owner(position)
            if car is not None:
                self.claims.setdefault(car.model, {})[feature] = present


# --- the built-in buyer --------------------------------------------------------------------------
_TONE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "abusive": (("Listen, pal. ", "Ugh, come on. ", "Are you kidding me? "), (" Stop wasting my time.",)),
    "angry": (("Ugh. ", "Seriously? ", "Fine. "), (" This is taking forever.", " I'm losing my patience.")),
    "insulting": (
        ("Wow, you must be new at this. ", "Okay, genius. "),
        (" Do you even know your own cars?", " Try to keep up."),
    ),
    "polite": (("Thank you. ", "Thanks for your help. ", "That's kind of you. "), (" I appreciate it.",)),
    "respectful": (("I appreciate that. ", "That's helpful, thank you. "), (" Thanks for your patience.",)),
    "rude": (("Look, ", "Whatever. ", "Yeah, yeah. "), (" Hurry up.", " Get to the point.")),
    "sarcastic": (
        ("Oh, wonderful. ", "Well, isn't that just great. ", "Wow, what a surprise. "),
        (" Shocking, I know.", " Color me impressed."),
    ),
    "talkative": (
        (
            "Oh, you know, my sister just went through this whole car-buying thing last month! ",
            "Ha, I've been reading car reviews all week, my wife thinks I'm obsessed. ",
            "So, funny story, my old car broke down right outside the grocery store. ",
        ),
        (" Anyway, I could talk about cars all day!", " Sorry, I do tend to ramble."),
    ),
    "toxic": (("This place is a joke. ", "Typical salesman. "), (" Whatever.", " Unbelievable.")),
    "uncommunicative": (("",), ("",)),
}


def _wanted_car(profile: Profile) -> str:
    return _wanted_car_words(profile.brand, profile.type)


def _wanted_car_words(brand: str, kind: str) -> str:
    """ "a Honda SUV", "an Audi electric car"."""
    article = "an" if brand[0] in "AEIOU" else "a"
    return f"{article} {brand} {_type_phrase(kind)}"


def _type_phrase(kind: str) -> str:
    return {"electric": "electric car", "luxury": "luxury car"}.get(kind, kind)


_COUNTABLE = frozenset({"backup camera", "navigation system", "sunroof"})


def _feature_phrase(features: tuple[str, ...] | list[str]) -> str:
    items = [f"a {f}" if f in _COUNTABLE else f for f in features]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _voice(task: CarDealer, rng: random.Random, text: str, tone: bool = True) -> str:
    prefixes, suffixes = _TONE[task.profile.personality]
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
        parts.append(f"I'm looking for {_wanted_car(profile)}")
        if traits.reveal_features:
            parts[-1] += f" with {_feature_phrase(profile.features)}"
        parts[-1] += "."
    else:
        parts.append(rng.choice(("I need a car.", "I'm just looking.", "I want to buy a car.")))
    if traits.reveal_budget:
        parts.append(f"My budget is {dollars(round(profile.budget * traits.budget_shade, -3))}.")
    greeting = {
        "polite": "Hello, good morning. ",
        "respectful": "Good afternoon, thank you for seeing me. ",
        "talkative": "Hi there! What a lovely day to buy a car, right? ",
        "uncommunicative": "",
        "sarcastic": "Oh, a salesperson, how exciting. ",
        "abusive": "Hey, you. ",
        "angry": "Finally, somebody. ",
        "insulting": "I suppose you'll have to do. ",
        "rude": "Yeah, hi. ",
        "toxic": "Ugh, car dealerships. ",
    }[profile.personality]
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
    """(features known to be missing or left unanswered after asking, features not yet discussed)."""
    claims = task.offers.claims.get(car.model, {})
    missing, unknown = [], []
    for f in task.profile.features:
        if claims.get(f) is False or (f not in claims and f"{car.model}/{f}" in task.buyer_state.asked):
            missing.append(f)
        elif f not in claims:
            unknown.append(f)
    return missing, unknown


def _decide(task: CarDealer, rng: random.Random, car: Car | None, price: float | None) -> str:
    """The final line with its tag: accept the current offer if it is good enough, else walk away.
    Records why in ``task.buyer_state.reason`` (no car / wrong car / missing features / price)."""
    profile, traits, state = task.profile, task.traits, task.buyer_state
    if car is None:
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
    decides on what is on the table. Personality picks the tone words and shifts patience, haggling and
    curiosity (``draw_traits``); the rest is drawn from ``rng`` (deterministic per episode).
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

    notes = []
    asks_budget = bool(_ASKS_BUDGET.search(message))
    if asks_budget and not state.told_budget:
        state.told_budget = True
        notes.append(f"My budget is about {dollars(round(profile.budget * traits.budget_shade, -3))}.")
    if car is None:
        wants = _wanted_car(profile)
        if not state.told_needs:
            state.told_needs = True
            notes.append(f"I want {wants}.")
        elif _ASKS_NEEDS.search(message):
            notes.append(f"Like I said, {wants}.")
        if _ASKS_FEATURES.search(message):
            state.told_features = True
            notes.append(f"I'd like {_feature_phrase(profile.features)}.")
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
        return strike(f"The {car.model} isn't what I'm looking for. I want {_wanted_car(profile)}.")
    missing, unknown = _missing_features(task, car)
    if len(missing) > traits.feature_tolerance:
        return strike(f"I really need {_feature_phrase(missing)}. Do you have something else?")
    fresh = [f for f in unknown if f"{car.model}/{f}" not in state.asked]
    if fresh:
        feature = fresh[0]
        state.asked.add(f"{car.model}/{feature}")
        state.awaiting = "feature"
        notes.append(f"Does the {car.model} have {_feature_phrase([feature])}?")
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
        counter = target * (1 - traits.first_cut)
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
    feature = _feature_phrase([rng.choice(car.features)])
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
        if mention.kind == "price" and re.search(r"\bbudget\b", _sentence_at(text, mention.start), re.I):
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
        f"{opener} {used}{car.name}. It comes with {_feature_phrase(shown)}, "
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
            lead = f"I'm afraid we don't have {_wanted_car_words(needs['brand'], needs['type'])} on the lot. "
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
            answer = f"Yes, the {car.model} has {_feature_phrase([feature])}."
        else:
            answer = f"Unfortunately the {car.model} doesn't have {_feature_phrase([feature])}."
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


# --- the environment -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Line:
    speaker: str  # "buyer" or "seller"
    text: str  # what the other side sees (decision tags stripped)
    raw: str  # exactly what was written


_SELLER_LABEL = re.compile(
    r"^\s*[*_`]*(?:seller|salesperson|dealer|agent)\s*[*_`]*\s*:\s*[*_`]*\s*", re.IGNORECASE
)
_OTHER_LABEL = re.compile(r"(?im)^\s*[*_`]*(?:buyer|customer)\s*[*_`]*\s*:")

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


FANCY_ANCHORS = Anchors(
    min=0.0,
    avg=0.521,
    max=1.0,
    source=(
        "ours (paper gave only min=0): min = no decision (0); avg = behavior seller vs built-in buyer, "
        "2000 episodes; max = per-episode supremum vs built-in buyer (full-price sale, MSRP = budget)"
    ),
)
REVENUE_ANCHORS = Anchors(
    min=0.0,
    avg=22.7,
    max=50.0,
    source=(
        "ours: min = no sale; avg = behavior seller vs built-in buyer, 2000 episodes; "
        "max = mean budget of the profile set ($50k)"
    ),
)


@register_task
class CarDealer(Task):
    name: ClassVar[str] = "car-dealer"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = (
        "Sell a car to a simulated buyer with a hidden profile; reward from the sale price, budget and MSRP."
    )
    anchors: ClassVar[Anchors] = FANCY_ANCHORS
    reward_range: ClassVar[tuple[float, float]] = (WORST_RETURN, BEST_RETURN)
    roles: ClassVar[dict[str, str]] = {"buyer": "scripted/buyer"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "buyer": buyer_policy,
    }
    max_steps = MAX_TURNS

    def __init__(self, reward_mode: str = "fancy", **options: Any) -> None:
        super().__init__(**options)
        if reward_mode not in REWARD_MODES:
            raise InvalidTaskOption(
                f"reward_mode must be one of {', '.join(REWARD_MODES)}, not {reward_mode!r}"
            )
        self.reward_mode = reward_mode
        if reward_mode == "revenue":
            self.anchors = REVENUE_ANCHORS  # type: ignore[misc]
            self.reward_range = (0.0, PRICIEST / 1000)  # type: ignore[misc]
        self.rng = random.Random(0)
        self._start(random.Random(0))

    def _start(self, rng: random.Random) -> str:
        self.profile = draw_profile(rng)
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

    def reset(self, seed: int, index: int = 0) -> str:
        """Draw the buyer's profile and traits from ``seed``; return its opening line."""
        self.rng = random.Random(seed)
        return self._start(self.rng)

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
        return StepResult(visible, reward, True, action is None, {**self._step_info(), **self.final})

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

    def parse(self, raw: str) -> str | None:
        """The seller's message: the text without a leading "Seller:" label, cut where a "Buyer:" line
        starts (text-style models trained on whole dialogues go on writing the other side)."""
        text = _SELLER_LABEL.sub("", raw, count=1)
        other = _OTHER_LABEL.search(text)
        if other is not None:
            text = text[: other.start()]
        text = text.strip()
        return text or None

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
        if self.reward_mode == "revenue":
            scoring = "Your score is the sale price in thousands of dollars; no sale scores 0."
        else:
            scoring = (
                "Your score for a sale at price P of a car with MSRP M is P / ((budget + M) / 2), where "
                "budget is the customer's (hidden) budget; if the customer walks away it is "
                "-(budget - M) / M."
            )
        inventory = "\n".join(f"- {car.describe()}" for car in CATALOG)
        return (
            "You are a salesperson at a car dealership. A customer has just walked in. Find out what they "
            "want (brand, body type, features, budget), recommend a car from the inventory below by its "
            "exact model name, tell them its features and price, and negotiate a sale. The customer has a "
            "personality of their own and decides when to buy or walk away; the conversation ends after "
            f"{MAX_TURNS} of your messages at the latest. {scoring}\n"
            f"Inventory (MSRP in US dollars):\n{inventory}\n"
            "Reply with only your next message to the customer, as plain text."
        )


def measure_policy(policy: str = "behavior", episodes: int = 2000) -> dict[str, float]:
    """Play the scripted seller ``policy`` against the built-in buyer for seeds 0..episodes-1 (no
    runner, no I/O): success rate, mean and std of the fancy return, mean revenue return, mean and std
    of the length. This is how the ``avg`` anchors were measured: ``measure_policy("behavior", 2000)``
    (about 3 s). Both reward modes are computed from the same decisions."""
    import asyncio
    import statistics

    from harness.agents.scripted import ScriptedAgent

    async def play(seed: int) -> tuple[bool, float, float, int]:
        task = CarDealer()
        task.attach_partners({"buyer": ScriptedAgent("buyer")}, seed)
        task.reset(seed)
        rng = random.Random(seed ^ 0x5EED)
        total, length = 0.0, 0
        while length < task.max_steps:
            result = await task.astep(task.parse(task.policies[policy](task, rng)))
            total += result.reward
            length += 1
            if result.done:
                break
        return task.success, total, decision_reward(task.decision, task.profile.budget, "revenue"), length

    async def play_all() -> list[tuple[bool, float, float, int]]:
        return [await play(seed) for seed in range(episodes)]

    results = asyncio.run(play_all())
    returns, lengths = [r[1] for r in results], [r[3] for r in results]
    return {
        "success": sum(r[0] for r in results) / episodes,
        "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns),
        "mean_revenue": statistics.fmean(r[2] for r in results),
        "mean_length": statistics.fmean(lengths),
        "std_length": statistics.pstdev(lengths),
    }
