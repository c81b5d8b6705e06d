"""Car Dealer's text: the buyer's decision tag, and what a seller's free text says (cars, features,
prices, discounts), read with rules; ``OfferTracker`` keeps what the seller has put on the table;
``read_message`` finds the seller's message in a model's reply (the task's ``parse``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from lmrl.parsing import Invalid, Parsed
from lmrl.tasks.car_dealer.catalog import BRANDS, CATALOG, Car, Profile, dollars

DECISION_FORMAT = (
    "Output: Decision=Accept MSRP=$M Buy Price=$P",
    "Output: Decision=Reject MSRP=$M",
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


def sentence_at(text: str, position: int) -> str:
    """The sentence around ``position``, with its closing punctuation."""
    start = max(text.rfind(c, 0, position) for c in ".!?\n") + 1
    ends = [i for i in (text.find(c, position) for c in ".!?\n") if i >= 0]
    return text[start : min(ends) + 1 if ends else len(text)]


def _asks_budget(text: str, position: int) -> bool:
    """A seller's amount inside a question about the budget ("Around $30k? What's your budget?")."""
    sentence = sentence_at(text, position)
    return sentence.endswith("?") and bool(_BUDGET_WORDS.search(sentence))


def car_fit(car: Car, profile: Profile) -> int:
    """How well a car suits the buyer, as the buyer sees it: brand and type first, then affordability."""
    return (
        4 * (car.brand == profile.brand) + 4 * (profile.type in car.types) + 2 * (car.msrp <= profile.budget)
    )


# Words that make an amount a claim about the car's list price (MSRP), not an offer.
_LIST_PRICE = re.compile(
    r"(?:\bmsrp|\blist(?:s|ed|ing)?(?:\s+price)?|\bsticker(?:\s+price)?|\bretail(?:s|ing)?(?:\s+price)?|"
    r"suggested\s+(?:retail\s+)?price)\b[^.!?\n$\d]{0,20}$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Claim:
    """One statement of fact in a seller message: ``car`` has (``present``) or lacks ``feature``, or
    ``car`` lists at ``value`` (``feature`` is ``None``)."""

    car: Car
    feature: str | None = None
    present: bool = True
    value: float | None = None


@dataclass
class OfferTracker:
    """What the seller has put on the table so far, read from the seller's messages with rules.

    ``focus`` is the car under discussion: in a message naming cars, the best fit for the buyer (ties:
    the last named, as sellers end on what they propose). A price attaches to the nearest car named
    before it in the same message, else to the focus; "$2,000 off" / "5% off" lower the focus's price;
    amounts inside a question about the budget are ignored; feature claims attach like prices.
    ``last_claims``: the latest message's statements of fact (features outside questions, list prices
    such as "it lists at $X" / "MSRP $X"), for the buyer to check against the catalog.
    """

    focus: Car | None = None
    prices: dict[str, float] = field(default_factory=dict)
    claims: dict[str, dict[str, bool]] = field(default_factory=dict)
    named: list[str] = field(default_factory=list)
    last_claims: list[Claim] = field(default_factory=list)

    def price(self, car: Car | None) -> float | None:
        return None if car is None else self.prices.get(car.model)

    def update(self, text: str, profile: Profile) -> None:
        self.last_claims = []
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
                if _LIST_PRICE.search(text[max(0, mention.start - 40) : mention.start]):
                    self.last_claims.append(Claim(car, value=mention.value))
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
                if not sentence_at(text, position).rstrip().endswith("?"):
                    self.last_claims.append(Claim(car, feature, present))


# --- the seller's message in a free-text reply ----------------------------------------------------
MAX_MESSAGE_CHARS = 1_000  # a seller message longer than this is invalid ("too-long")
MAX_REPLY_CHARS = 20_000  # the whole reply (reasoning, a marker, the message), before anything is read

# A line that starts the message: a speaker label or a marker ("Seller:", "**Message:**", "Final reply:",
# "Message to the customer:"), with up to three words before it; only a colon separates.
_MARKER = re.compile(
    r"^[ \t>*_#`~\-+•]*(?:[A-Za-z']+[ \t]+){0,3}?"
    r"(?:message|reply|response|seller|salesperson|sales\s*(?:person|agent|rep)|dealer|agent)"
    r"(?:[ \t]+to[ \t]+(?:the[ \t]+)?(?:customer|buyer))?[ \t]*[*_`]*[ \t]*:[ \t]*[*_`]*[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
# Where a model starts writing the buyer's side: a "Buyer:" / "Customer:" line, or a decision tag.
_BUYER_TURN = re.compile(
    r"^[ \t>*_#`]*(?:the[ \t]+)?(?:buyer|customer)[ \t]*(?:\([^)\n]{0,40}\))?[ \t]*[*_`]*[ \t]*:"
    r"|\boutput[ \t]*[*_`]*[ \t]*:[ \t]*[*_`]*[ \t]*decision\b|\bdecision[ \t]*=[ \t]*(?:accept|reject)",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTES = {'"': '"', "“": "”", "'": "'", "‘": "’", "«": "»", "`": "`"}


def read_message(raw: str) -> Parsed:
    """The seller's message in a free-text reply, or ``Invalid`` (harness/parsing.py's reasons).

    The reply is NFKC-normalized and cut where it starts writing the buyer's turn (a ``Buyer:`` /
    ``Customer:`` line or a decision tag); then the text after the last marker line (``Message:``,
    ``Reply:``, ``Seller:`` ...) is the message, or the whole text when there is none; surrounding
    quotes are dropped. Empty (or nothing but the buyer's lines) -> ``empty``; a reply over
    ``MAX_REPLY_CHARS`` or a message over ``MAX_MESSAGE_CHARS`` -> ``too-long``.
    """
    raw = unicodedata.normalize("NFKC", raw)
    if not raw.strip():
        return Invalid("empty")
    if len(raw) > MAX_REPLY_CHARS:
        return Invalid("too-long", f"{len(raw):,} characters in the reply; at most {MAX_REPLY_CHARS:,}")
    text = raw
    other = _BUYER_TURN.search(text)
    if other is not None:
        text = text[: other.start()]
    marker = None
    for marker in _MARKER.finditer(text):  # noqa: B007 - the last marker wins
        pass
    if marker is not None:
        text = text[marker.end() :]
    message = text.strip()
    while len(message) >= 2 and _QUOTES.get(message[0]) == message[-1]:
        message = message[1:-1].strip()
    if not message:
        return Invalid("empty", "only the buyer's lines" if other is not None else "nothing after the marker")
    if len(message) > MAX_MESSAGE_CHARS:
        return Invalid("too-long", f"{len(message):,} characters; at most {MAX_MESSAGE_CHARS:,}")
    return message
