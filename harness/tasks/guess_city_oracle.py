"""Guess My City's knowledge base and built-in oracle (``scripted/city-oracle``), and how it is measured.

Knowledge lives in data files: ``data/cities.json`` (built by ``tools/build_cities.py``: population,
coordinates, country, continent, coast, capital, climate, languages, landmarks, dishes) and
``data/cities_extra.json`` (hand-written: port, river, mountains, metro, sports and teams, industry, age,
festival). A ``null`` there means "not sure", and the oracle says so rather than guess.

The oracle recognises question types one by one (``_answer``); a question it does not recognise, or
one whose fact is unknown, gets ``UNMAPPED_REPLY`` with ``mapped=False``, never a guess. Yes/no answers
start with "Yes"/"No" and restate the fact ("No, it is not in Europe."). A negated question ("Is it
not in Asia?", "Isn't it on the coast?") is answered literally with the fact restated ("No, it is in
Asia."), so neither reading of the yes/no can mislead. Answers never name the city or its country.

``oracle_accuracy(labels)`` scores the oracle on a hand-labelled set (``tests/data/
guess_city_oracle_labels.jsonl``, written from general knowledge, not from the knowledge base).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
DATA_PATH = DATA_DIR / "cities.json"
EXTRA_PATH = DATA_DIR / "cities_extra.json"
UNMAPPED_REPLY = "I'm not sure how to answer that; ask me something else."


# --- the knowledge base --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class City:
    rank: int
    name: str
    variants: tuple[str, ...]
    country: str
    country_variants: tuple[str, ...]
    region: str | None
    continents: tuple[str, ...]
    area: str
    latitude: float
    longitude: float
    population: int
    capital: bool
    coastal: bool
    climate: str
    snow: bool
    languages: tuple[str, ...]
    landmarks: tuple[str, ...]
    dishes: tuple[str, ...]
    # From cities_extra.json; None = not sure.
    port: bool | None
    river: str | bool | None  # the river(s) through it; False = none of note
    mountains: bool | None
    metro: bool | None
    sports: tuple[str, ...]  # most followed first
    teams: str | None  # well-known clubs, phrased without the city's name
    industry: str
    old: bool | None  # goes back before ~1600 (True), grew after ~1800 (False)
    history: str
    festival: str

    @property
    def names(self) -> tuple[str, ...]:
        """The city's own names: what a correct guess may use and what the oracle must not say."""
        return (self.name, *self.variants)

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Every name whose mention by the oracle is a leak: the city's and its country's."""
        return (*self.names, self.country, *self.country_variants)


def load_cities() -> tuple[tuple[City, ...], tuple[str, ...], str]:
    data = json.loads(DATA_PATH.read_text(encoding="utf-8"))
    extra = json.loads(EXTRA_PATH.read_text(encoding="utf-8"))["cities"]
    countries = data["countries"]
    cities = []
    for c in data["cities"]:
        more = extra[c["name"]]
        cities.append(
            City(
                rank=c["rank"],
                name=c["name"],
                variants=tuple(c["variants"]),
                country=c["country"],
                country_variants=tuple(countries[c["country"]]["variants"]),
                region=c["region"],
                continents=tuple(c["continents"]),
                area=c["area"],
                latitude=c["latitude"],
                longitude=c["longitude"],
                population=c["population"],
                capital=c["capital"],
                coastal=c["coastal"],
                climate=c["climate"],
                snow=c["snow"],
                languages=tuple(c["languages"]),
                landmarks=tuple(c["landmarks"]),
                dishes=tuple(c["dishes"]),
                port=more["port"],
                river=more["river"],
                mountains=more["mountains"],
                metro=more["metro"],
                sports=tuple(more["sports"]),
                teams=more["teams"],
                industry=more["industry"],
                old=more["old"],
                history=more["history"],
                festival=more["festival"],
            )
        )
    return tuple(cities), tuple(data["other_countries"]), data["about"]


CITIES, OTHER_COUNTRIES, DATA_ABOUT = load_cities()
CITY_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CITIES)}
CLIMATES: dict[str, str] = {
    "tropical": "The climate is tropical: hot all year, with a rainy season.",
    "arid": "The climate is dry, with very little rain.",
    "subtropical": "The climate is humid subtropical: hot, humid summers and mild winters.",
    "mediterranean": "The climate is Mediterranean: warm, dry summers and mild, rainy winters.",
    "temperate": "The climate is temperate: mild summers, cool winters and rain all through the year.",
    "continental": "The climate is continental: hot summers and cold winters.",
    "highland": "It lies high up, so the weather is mild all year round.",
}


# --- text normalization --------------------------------------------------------------------------
def strip_accents(text: str) -> str:
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalize(text: str) -> str:
    """Lowercase, accents and apostrophes gone, other punctuation -> spaces, "st" -> "saint".

    Dots inside abbreviations vanish ("U.S.A." -> "usa") and decimal points stay ("3.5").
    """
    text = strip_accents(text).lower()
    text = re.sub(r"['’‘`´]", "", text)
    text = re.sub(r"(?<=[a-z])\.(?=[a-z])", "", text)
    text = re.sub(r"[^a-z0-9.]+", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    text = re.sub(r"\bst\b", "saint", text)
    return " ".join(text.split())


_ABBREVIATIONS = frozenset({"st", "mt", "mr", "mrs", "ms", "dr", "ft", "vs", "jr", "sr", "no", "etc"})
_SENTENCE_END = re.compile(r"([.!?])\s+")


def sentences(text: str) -> list[str]:
    """Split at ., ! or ? followed by a space, but not after abbreviations ("St.", "L.A.")."""
    pieces, start = [], 0
    for found in _SENTENCE_END.finditer(text):
        if found.group(1) == ".":
            word = re.search(r"([A-Za-z.]+)\.$", text[start : found.start() + 1])
            if word and (word.group(1).lower() in _ABBREVIATIONS or len(word.group(1).replace(".", "")) <= 1):
                continue
            if word and "." in word.group(1):  # "U.S." / "L.A."
                continue
        pieces.append(text[start : found.end()].strip())
        start = found.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def question_core(text: str) -> str:
    """The last question sentence of ``text`` (everything after its last "?" dropped)."""
    text = re.sub(r"\([^)]*\)", " ", text).strip()
    if "?" in text:
        text = text[: text.rindex("?") + 1]
    found = sentences(text)
    return found[-1] if found else ""


# --- question templates: "Is it in X?", "Are you from X?", "Is it X?" ------------------------------
_LEAD = re.compile(
    r"^(?:(?:ok|okay|so|alright|all right|well|then|hmm|great|thanks|thank you|in that case|lets see|"
    r"let me guess|final question|last question|one more|question)\s+)+"
)
_TRAIL = re.compile(r"(?:\s+(?:then|by any chance|perhaps|maybe|right|correct|please|isnt it|am i right))+$")
# (kind, pattern): "loc" = located in P, "ident" = the city is P, "guess" = "the city you are from is P".
_TEMPLATES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (
            "guess",
            r"is (?:the city (?:that )?you(?: are|re| come| live) (?:from|in)|"
            r"the city (?:where )?you live(?: in)?|the city you(?: are|re) thinking of) (?P<p>.+)",
        ),
        ("guess", r"(?:are|were) you (?:originally )?from the city of (?P<p>.+)"),
        (
            "loc",
            r"(?:is|are) (?:it|the city|your city|your home city|your hometown|you|this city|that city|"
            r"the place)(?: located| situated| found)? (?:in|on|within|inside|part of) (?P<p>.+)",
        ),
        ("loc", r"(?:do|did) you (?:live|reside|stay|grow up) in (?P<p>.+)"),
        ("ident", r"(?:are|were) you (?:originally )?from (?P<p>.+)"),
        ("ident", r"do you (?:come|hail) from (?P<p>.+)"),
        (
            "ident",
            r"is (?:it|this|that|the answer|the city|the place|your (?:home )?city|your hometown) (?P<p>.+)",
        ),
        ("ident", r"is (?:the|your) country (?P<p>.+)"),
        (
            "ident",
            r"(?:(?:my )?(?:final |last )?guess is|i guess|i think (?:it is|its|you are from|youre from)|"
            r"i believe (?:it is|its)|could it be|can it be|might it be|would it be|it is|its|you are from|"
            r"youre from|how about|what about) (?P<p>.+)",
        ),
        ("bare", r"(?P<p>.+)"),
    )
)
SLOT_LEAD = re.compile(r"^(?:the city of |the country of |the |a )")
_QUALIFIERS = re.compile(
    r"\s+(?:province|state|region|country|continent|area|prefecture|district|county|city area)$"
)


def clean(text: str) -> str:
    """A normalized question without its lead-in ("ok so") and tail ("by any chance")."""
    text = _LEAD.sub("", text)
    return _TRAIL.sub("", text)


@lru_cache(maxsize=1 << 14)
def slots(question: str) -> tuple[tuple[str, str], ...]:
    """(kind, slot) for every template that matches ``question``'s normalized core, in order."""
    text = clean(normalize(question))
    found = []
    for kind, pattern in _TEMPLATES:
        match = pattern.fullmatch(text)
        if match:
            found.append((kind, SLOT_LEAD.sub("", clean(match.group("p")))))
    return tuple(found)


CITY_KEYS: tuple[frozenset[str], ...] = tuple(frozenset(normalize(n) for n in c.names) for c in CITIES)

# Places the oracle can answer "Is it in X?" about: normalized name -> (kind, value).
_AREA_ALIASES: dict[str, tuple[str, ...]] = {
    "east asia": ("East Asia",),
    "eastern asia": ("East Asia",),
    "far east": ("East Asia", "Southeast Asia"),
    "southeast asia": ("Southeast Asia",),
    "south east asia": ("Southeast Asia",),
    "southeastern asia": ("Southeast Asia",),
    "south asia": ("South Asia",),
    "southern asia": ("South Asia",),
    "indian subcontinent": ("South Asia",),
    "middle east": ("Middle East",),
    "near east": ("Middle East",),
    "north africa": ("North Africa",),
    "northern africa": ("North Africa",),
    "west africa": ("West Africa",),
    "western africa": ("West Africa",),
    "central africa": ("Central Africa",),
    "east africa": ("East Africa",),
    "eastern africa": ("East Africa",),
    "southern africa": ("Southern Africa",),
    "sub saharan africa": ("West Africa", "Central Africa", "East Africa", "Southern Africa"),
    "western europe": ("Western Europe",),
    "eastern europe": ("Eastern Europe",),
    "latin america": ("Latin America",),
    "central america": ("Central America",),  # no city of ours lies in these
    "caribbean": ("the Caribbean",),
    "central asia": ("Central Asia",),
    "scandinavia": ("Scandinavia",),
}
_CONTINENT_ALIASES: dict[str, tuple[str, ...]] = {
    "asia": ("Asia",),
    "africa": ("Africa",),
    "europe": ("Europe",),
    "north america": ("North America",),
    "south america": ("South America",),
    "oceania": ("Oceania",),
    "australasia": ("Oceania",),
    "america": ("North America", "South America"),
    "americas": ("North America", "South America"),
}


def _build_places() -> dict[str, tuple[str, Any]]:
    places: dict[str, tuple[str, Any]] = {}
    for name, values in _AREA_ALIASES.items():
        places[name] = ("area", values)
    for name, values in _CONTINENT_ALIASES.items():
        places[name] = ("continent", values)
    for city in CITIES:
        if city.region:
            places[normalize(city.region)] = ("region", city.region)
    for name in OTHER_COUNTRIES:
        places[normalize(name)] = ("country", name)
    for city in CITIES:
        for name in (city.country, *city.country_variants):
            places[normalize(name)] = ("country", city.country)
    for index, keys in enumerate(CITY_KEYS):
        for key in keys:
            places[key] = ("city", index)
    return places


PLACES = _build_places()


def resolve(slot: str) -> tuple[str, Any] | None:
    for _ in range(3):
        if slot in PLACES:
            return PLACES[slot]
        trimmed = SLOT_LEAD.sub("", _QUALIFIERS.sub("", slot))
        if trimmed == slot:
            break
        slot = trimmed
    return None


# --- the built-in oracle -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OracleReply:
    text: str
    mapped: bool = True


UNSURE = OracleReply(UNMAPPED_REPLY, False)
_AUX = r"(?:is|are|does|do|did|was|were|has|have|can|could|would|will)"
_YES_NO_START = re.compile(rf"^{_AUX}\b")
# Open questions whose answer is a description ("What is a famous dish?"), not a measure ("How tall").
_OPEN_START = re.compile(
    r"^(?:what|which|name|tell|describe|give|list|recommend|any|whats|where|(?:can|could) you "
    r"(?:tell|name|describe|give|recommend))\b"
)
_SUBJECT = r"(?:it|the city|your city|this city|that city|the place|you|they|people|there|the people|locals)"
_NEGATED_CONTRACTION = re.compile(rf"^(\W*{_AUX})n['’]?t\b", re.I)
_NEGATED_NOT = re.compile(rf"^(\W*{_AUX}\s+{_SUBJECT})\s+not\b", re.I)
_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
}  # fmt: skip
_THRESHOLD = re.compile(
    r"\b(?P<op>more|over|above|bigger|larger|greater|at least|less|fewer|under|below|smaller)\b(?: than)?"
    r"(?: about| around)? (?P<n>\d+(?:\.\d+)?|" + "|".join(_NUMBERS) + r") ?(?:million|mil|m)\b"
)
_EXTRA_LANGUAGES = (
    "Italian", "Dutch", "Polish", "Greek", "Swedish", "Norwegian", "Danish", "Finnish", "Czech", "Hungarian",
    "Romanian", "Ukrainian", "Hebrew", "Tagalog", "Filipino", "Khmer", "Lao", "Nepali", "Sinhala", "Somali",
    "Berber", "Kurdish", "Uzbek", "Kazakh", "Catalan", "Basque", "Irish", "Welsh", "Serbian", "Croatian",
    "Bulgarian", "Malayalam", "Oromo", "Tigrinya", "Igbo", "Wolof", "Javanese", "Sundanese", "Cebuano",
)  # fmt: skip
_LANGUAGE_ALIASES: dict[str, tuple[str, ...]] = {
    "chinese": ("Mandarin", "Cantonese", "Shanghainese", "Hokkien", "Teochew", "Fuzhounese"),
    "farsi": ("Persian",),
    "bangla": ("Bengali",),
    "myanmar": ("Burmese",),
    "kiswahili": ("Swahili",),
    "taiwanese": ("Hokkien",),
    "hindustani": ("Hindi", "Urdu"),
    "indonesian": ("Indonesian",),
    "malay": ("Malay",),
}
_LANGUAGES: dict[str, tuple[str, ...]] = {
    **{normalize(lang): (lang,) for city in CITIES for lang in city.languages},
    **{normalize(lang): (lang,) for lang in _EXTRA_LANGUAGES},
    **_LANGUAGE_ALIASES,
}
_LANGUAGE_WORDS = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _LANGUAGES), key=len, reverse=True)) + r")\b"
)
_CLIMATE_WORDS: dict[str, str] = {
    "tropical": "tropical",
    "arid": "arid",
    "desert": "arid",
    "dry": "arid",
    "subtropical": "subtropical",
    "humid subtropical": "subtropical",
    "mediterranean": "mediterranean",
    "temperate": "temperate",
    "oceanic": "temperate",
    "continental": "continental",
    "highland": "highland",
    "alpine": "highland",
}
_CLIMATE_IS = re.compile(
    r"\b(?:climate|weather) (?:is |considered |classified as )*(?:a |an )?(?P<c>humid subtropical|"
    + "|".join(_CLIMATE_WORDS)
    + r")\b|\b(?:a |an )(?P<d>humid subtropical|"
    + "|".join(_CLIMATE_WORDS)
    + r") climate\b"
)
# Sports the oracle can say yes or no about (``sports`` in the data names the most followed ones).
_SPORT_NAMES = (
    "american football", "australian rules football", "australian rules", "ice hockey", "field hockey",
    "table tennis", "horse racing", "beach volleyball", "rugby league", "rugby union", "muay thai",
    "martial arts", "lucha libre", "football", "soccer", "cricket", "baseball", "basketball", "rugby",
    "hockey", "tennis", "badminton", "volleyball", "sumo", "running", "athletics", "cycling", "wrestling",
    "swimming", "golf", "boxing", "skiing", "sailing", "squash", "buzkashi", "chinlone", "marathon",
)  # fmt: skip
_SPORT_WORDS = re.compile(r"\b(" + "|".join(map(re.escape, _SPORT_NAMES)) + r")\b")
_SPORT_SAME = {
    "soccer": "football",
    "athletics": "running",
    "rugby union": "rugby",
    "afl": "australian rules",
}
_SPORT_TOPIC = re.compile(
    r"\b(?:sports?|sporting|teams?|clubs?|league|stadiums?|athletes?|afl|"
    + "|".join(re.escape(s) for s in _SPORT_NAMES if s != "running")
    + r")\b"
)
# River names in the data ("yangtze", "thames"), minus plain words ("red", "pearl", "east").
_NOT_RIVER_NAMES = frozenset({"the", "river", "east", "red", "yellow", "pearl", "grand", "a", "big"})
_RIVER_NAMES: frozenset[str] = (
    frozenset(
        normalize(word)
        for city in CITIES
        if isinstance(city.river, str)
        for word in re.findall(r"\b[A-Z][a-z]+\b", city.river)
    )
    - _NOT_RIVER_NAMES
)
_GENERIC_RIVER = frozenset({"a", "the", "big", "major", "large", "any", "famous", "main", "great", "wide"})
_FOOD_WORDS = re.compile(
    r"\b(?:dish|dishes|food|foods|cuisine|eat|eating|meal|meals|delicacy|delicacies|snack|snacks|"
    r"breakfast|dinner|lunch|restaurant|restaurants|cooking|specialty|speciality|sweet|sweets|dessert|"
    r"desserts|street food)\b"
)


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _yes(truth: bool, yes: str, no: str) -> OracleReply:
    return OracleReply(yes if truth else no)


def _flag(truth: bool | None, yes: str, no: str) -> OracleReply:
    """A yes/no answer from a fact that may be unknown (``None``: not sure)."""
    return UNSURE if truth is None else OracleReply(yes if truth else no)


def _place_answer(kind: str, value: Any, slot_kind: str, city: City, index: int) -> OracleReply:
    if kind == "city":
        return _yes(value == index, "Yes, that is my city.", "No, that is not my city.")
    if kind == "country":
        return _yes(value == city.country, "Yes, it is in that country.", "No, it is not in that country.")
    if kind == "region":
        return _yes(
            value == city.region,
            "Yes, it is in that province or state.",
            "No, it is not in that province or state.",
        )
    if kind == "continent":
        inside = any(c in city.continents for c in value)
        label = "the Americas" if len(value) > 1 else value[0]
        return _yes(inside, f"Yes, it is in {label}.", f"No, it is not in {label}.")
    # area
    inside = city.area in value or (value == ("Middle East",) and city.country == "Egypt")
    label = " or ".join("the Middle East" if v == "Middle East" else v for v in value)
    return _yes(inside, f"Yes, it is in {label}.", f"No, it is not in {label}.")


def _alternatives(slot: str, city: City) -> str | None:
    """ "Is it in Asia or Europe?" -> names the one that holds (continents and areas only)."""
    parts = [p.strip() for p in re.split(r"\s*(?:,|\bor\b)\s*", slot) if p.strip()]
    if len(parts) < 2:
        return None
    resolved = [(p, resolve(SLOT_LEAD.sub("", p))) for p in parts]
    if not all(r is not None and r[0] in ("continent", "area") for _, r in resolved):
        return None
    for _, (kind, value) in resolved:  # type: ignore[misc]
        if kind == "continent" and any(c in city.continents for c in value) and len(value) == 1:
            return f"It is in {value[0]}."
        if kind == "area" and city.area in value:
            return f"It is in {city.area}."
    return "Neither."


_LAST_WORD_CAPITALIZED = re.compile(r"(?:^|\s)[A-Z][^\s]*\W*$")  # "... from Osaka?" but not "... from here?"
_NOT_NAME_START = frozenset(
    {"in", "on", "near", "at", "by", "a", "an", "close", "part", "located", "not", "far"}
    | {"north", "south", "east", "west"}
)


def _looks_like_a_name(slot: str, core: str) -> bool:
    words = slot.split()
    return (
        0 < len(words) <= 3
        and words[0] not in _NOT_NAME_START
        and slot not in _LANGUAGES
        and not _SPORT_WORDS.search(slot)
        and bool(_LAST_WORD_CAPITALIZED.search(core))
    )


def oracle_answer(question: str, city: City, turn: int = 0) -> OracleReply:
    """The built-in oracle's answer to ``question`` for ``city`` (``turn`` picks which landmark or
    dish it mentions). It never names the city or its country."""
    return _oracle_answer(question, CITY_INDEX[city.name], turn % 2)  # the KB holds two of each


@lru_cache(maxsize=1 << 17)
def _oracle_answer(question: str, index: int, turn: int) -> OracleReply:
    core = question_core(question) or question
    positive = _NEGATED_NOT.sub(r"\1", _NEGATED_CONTRACTION.sub(r"\1", core, count=1), count=1)
    if positive == core:
        return _answer(core, CITIES[index], index, turn)
    # Negated: answer the positive question, then flip the leading yes/no; the restated fact keeps
    # the answer unambiguous ("Is it not in Asia?" -> "No, it is in Asia.").
    reply = _answer(positive, CITIES[index], index, turn)
    flipped = re.sub(r"^(Yes|No)\b", lambda m: "No" if m.group(1) == "Yes" else "Yes", reply.text)
    if not reply.mapped or flipped == reply.text:
        return UNSURE
    return OracleReply(flipped)


def _answer(core: str, city: City, index: int, turn: int) -> OracleReply:
    q = clean(normalize(core))
    if not q:
        return UNSURE
    yes_no = bool(_YES_NO_START.match(q)) or q.startswith(("isnt", "arent", "doesnt"))
    is_open = bool(_OPEN_START.match(q))

    # Location, identity and guesses: "Is it in X?", "Are you from X?", "Is it X?", "X?".
    for slot_kind, slot in slots(core):
        place = resolve(slot)
        if place is not None:
            return _place_answer(place[0], place[1], slot_kind, city, index)
        if slot_kind in ("loc", "ident") and (alt := _alternatives(slot, city)):
            return OracleReply(alt)
        if slot_kind in ("guess", "ident") and _looks_like_a_name(slot, core):
            return OracleReply("No, that is not my city.")  # "Is it Osaka?": a city we do not know

    if re.search(r"\b(?:which|what) country\b|\bname of (?:the|your) country\b|\bwhat is your country\b", q):
        return OracleReply("I can't tell you the country, but you can ask me yes-or-no questions about it.")
    if re.search(
        r"\b(?:which|what) city (?:are|do|is)\b|\bname of (?:the|your) city\b|\bwhat is your city$", q
    ):
        return OracleReply("That is what you have to find out!")

    for topic in (_population, _language, _continent, _hemisphere, _capital, _sport, _river, _port,
                  _altitude, _coast, _mountains, _metro, _industry, _history, _festival, _food, _climate,
                  _size, _landmark):  # fmt: skip
        reply = topic(q, city, yes_no, is_open, turn)
        if reply is not None:
            return reply
    if re.search(r"\bwhere\b|\bpart of the world\b|\bregion of the world\b|\b(?:which|what) region\b", q):
        return OracleReply(f"It is in {city.area}.")
    return UNSURE


# Each topic returns an answer, ``UNSURE`` (the topic, but a fact we do not have), or None (not this
# topic). Order matters: sports before sights ("a famous team"), river and port before the coast.
def _population(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    found = _THRESHOLD.search(q)
    if found and re.search(r"\b(?:people|population|inhabitants|residents|populous|live|big|large)\b", q):
        raw = found.group("n")
        n = float(_NUMBERS.get(raw, 0) or raw)
        more = found.group("op") in ("more", "over", "above", "bigger", "larger", "greater", "at least")
        above = city.population >= n * 1e6
        truth = above if more else not above
        answer = f"{'more' if above else 'fewer'} than {n:g} million people live there."
        return OracleReply(f"{'Yes' if truth else 'No'}, {answer}")
    if re.search(r"\bmega ?city\b", q):
        return _yes(
            city.population >= 10e6,
            "Yes, more than 10 million people live there.",
            "No, fewer than 10 million people live there.",
        )
    return None


def _language(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(r"\b(?:language|languages|speak|spoken|tongue|dialect)\b", q):
        return None
    named = _LANGUAGE_WORDS.findall(q)
    if named and yes_no:
        spoken = [lang for word in named for lang in _LANGUAGES[word] if lang in city.languages]
        label = _LANGUAGES[named[0]][0] if named[0] not in _LANGUAGE_ALIASES else named[0].capitalize()
        if spoken:
            return OracleReply(f"Yes, people there speak {_join(spoken)}.")
        return OracleReply(f"No, {label} is not a main language there.")
    if yes_no:
        return UNSURE
    return OracleReply(f"Most people there speak {_join(city.languages)}.")


def _continent(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if re.search(r"\b(?:two|2|both|several|multiple|more than one) continents\b", q) and yes_no:
        many = len(city.continents) > 1
        return _yes(many, f"Yes, it spans {_join(city.continents)}.", "No, it lies on one continent.")
    if not re.search(r"\bcontinents?\b", q):
        return None
    if yes_no:
        return UNSURE
    if len(city.continents) > 1:
        return OracleReply(f"It spans two continents, {_join(city.continents)}.")
    return OracleReply(f"It is in {city.continents[0]}.")


def _hemisphere(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    for pattern, truth, yes, no in (
        (r"\bnorth(?:ern)? hemisphere\b|\bnorth of the equator\b", city.latitude > 0,
         "Yes, it is north of the equator.", "No, it is south of the equator."),
        (r"\bsouth(?:ern)? hemisphere\b|\bsouth of the equator\b", city.latitude < 0,
         "Yes, it is south of the equator.", "No, it is north of the equator."),
        (r"\beast(?:ern)? hemisphere\b|\beast of (?:the )?(?:prime meridian|greenwich)\b", city.longitude > 0,
         "Yes, it is east of the prime meridian.", "No, it is west of the prime meridian."),
        (r"\bwest(?:ern)? hemisphere\b|\bwest of (?:the )?(?:prime meridian|greenwich)\b", city.longitude < 0,
         "Yes, it is west of the prime meridian.", "No, it is east of the prime meridian."),
    ):  # fmt: skip
        if re.search(pattern, q):
            return _yes(truth, yes, no)
    if re.search(r"\b(?:near|close to|on) the equator\b", q):
        if abs(city.latitude) < 10:
            return OracleReply("Yes, it lies close to the equator.")
        if abs(city.latitude) > 23.44:
            return OracleReply("No, it lies outside the tropics.")
        return UNSURE
    if re.search(r"\btropics\b|\bequator\b", q):
        return _yes(
            abs(city.latitude) < 23.44, "Yes, it lies in the tropics.", "No, it lies outside the tropics."
        )
    if re.search(r"\bhemispheres?\b", q):
        ns = "northern" if city.latitude > 0 else "southern"
        ew = "eastern" if city.longitude > 0 else "western"
        return OracleReply(f"It is in the {ns} and {ew} hemispheres.")
    return None


def _capital(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(r"\bcapital\b", q):
        return None
    if re.search(r"\b(?:state|province|provincial|regional|region|financial|cultural|economic)\b", q):
        return UNSURE
    if not yes_no:
        return OracleReply("I can't tell you that without giving the answer away.")
    return _yes(city.capital, "Yes, it is the capital of its country.", "No, it is not the national capital.")


def _sport_key(name: str) -> str:
    return _SPORT_SAME.get(name, name)


def _plays(city: City, sport: str) -> bool:
    """Whether ``sport`` is among the city's most followed ones ("rugby" matches "rugby league")."""
    sport = _sport_key(sport)
    return any(sport == _sport_key(s.lower()) or sport in s.lower() for s in city.sports)


def _sport(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not _SPORT_TOPIC.search(q) or re.search(r"\b(?:river|rivers)\b", q):
        return None
    named = [_sport_key(s) for s in _SPORT_WORDS.findall(q)]
    about_teams = bool(re.search(r"\b(?:teams?|clubs?|franchises?)\b", q))
    popular = f"The most followed sport there is {city.sports[0]}" + (
        f", followed by {_join(city.sports[1:])}." if len(city.sports) > 1 else "."
    )
    if about_teams:
        if city.teams is None:
            return UNSURE if named else OracleReply(f"None that is famous abroad. {popular}")
        if named and not all(s in city.teams.lower() for s in named):
            return UNSURE  # e.g. a baseball team in a city whose famous clubs play football
        return OracleReply(f"Yes: {city.teams}." if yes_no else f"Well-known ones are {city.teams}.")
    if named and yes_no:
        if all(_plays(city, s) for s in named):
            return OracleReply(f"Yes, it is one of the most followed sports there. {popular}")
        return OracleReply(f"No, it is not one of the most followed sports there. {popular}")
    if yes_no:
        return UNSURE
    return OracleReply(popular)


def _river(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    named = set(q.split()) & _RIVER_NAMES
    named |= {w for w in re.findall(r"\b(\w+) rivers?\b", q) if w not in _GENERIC_RIVER}
    if not re.search(r"\brivers?\b|\bflows? through\b", q) and not (named and yes_no):
        return None
    if named and yes_no:  # "Is it on the Yangtze?": yes when we know it, else not sure
        if isinstance(city.river, str) and all(n in normalize(city.river).split() for n in named):
            return OracleReply(f"Yes, it lies on {city.river}.")
        return UNSURE
    if city.river is None:
        return UNSURE
    if city.river is False:
        return OracleReply("No, no big river runs through it.")
    return OracleReply(f"Yes: {city.river}." if yes_no else f"It lies on {city.river}.")


def _port(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(r"\b(?:port|ports|seaport|harbou?r|harbou?rs|shipping|docks)\b", q):
        return None
    if not yes_no and not is_open:
        return UNSURE
    return _flag(city.port, "Yes, it is a port for sea-going ships.", "No, it is not a seaport.")


def _altitude(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(r"\b(?:altitude|elevation|above sea level|high up|plateau)\b", q):
        return None
    if city.climate == "highland":
        return OracleReply(
            "Yes, it lies high above sea level." if yes_no else "It lies high above sea level."
        )
    if city.coastal:
        return OracleReply("No, it lies near sea level." if yes_no else "It lies near sea level.")
    return UNSURE


def _coast(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if re.search(r"\b(?:inland|landlocked)\b", q):
        return _yes(not city.coastal, "Yes, it is inland.", "No, it lies on the coast.")
    if re.search(r"\b(?:coast|coastal|coastline|sea|seaside|ocean|beach|beaches|shore|seafront)\b", q):
        if not yes_no and not is_open:
            return UNSURE
        return _yes(city.coastal, "Yes, it lies on the coast.", "No, it is inland.")
    return None


def _mountains(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(r"\b(?:mountains?|mountainous|hills?|hilly|peaks?|volcano(?:es)?)\b", q):
        return None
    if not yes_no and not is_open:
        return UNSURE
    return _flag(
        city.mountains, "Yes, there are mountains or high hills close by.", "No, the land around it is flat."
    )


def _metro(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(
        r"\b(?:metro|subway|underground|tube|light rail|rapid transit|public transport|transit|trains?)\b", q
    ):
        return None
    if city.metro is None:
        return UNSURE
    if re.search(r"\bpublic transport|transit\b", q) and not re.search(
        r"\b(?:metro|subway|underground)\b", q
    ):
        return OracleReply(
            "There is a metro system as well as buses."
            if city.metro
            else "There is no metro; people use buses."
        )
    return _yes(city.metro, "Yes, it has a metro system.", "No, it has no metro system.")


def _industry(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(r"\b(?:industry|industries|economy|economic|businesses|jobs|main employers?)\b", q):
        return None
    if yes_no:
        return UNSURE
    return OracleReply(f"Its main industries are {city.industry}.")


def _history(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(
        r"\b(?:old|ancient|historic|history|founded|established|built|young|new|modern) "
        r"(?:city|town|place)\b|"
        r"\bhow old\b|\bwhen was (?:it|the city) (?:founded|built|established)\b|\bits history\b|\bancient\b",
        q,
    ):
        return None
    if yes_no:
        young = bool(re.search(r"\b(?:young|new|modern) (?:city|town|place)\b", q))
        if city.old is None:
            return OracleReply(city.history)
        truth = city.old != young
        return OracleReply(f"{'Yes' if truth else 'No'}. {city.history}")
    return OracleReply(city.history)


def _festival(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(r"\b(?:festivals?|celebrations?|celebrated?|holidays?|carnivals?|parades?)\b", q):
        return None
    return OracleReply(f"Yes: {city.festival}." if yes_no else f"A big celebration there is {city.festival}.")


def _food(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not _FOOD_WORDS.search(q):
        return None
    dish = city.dishes[turn % len(city.dishes)]
    if is_open or re.search(r"\b(?:famous|known|typical|traditional|local|popular)\b", q) and not yes_no:
        return OracleReply(f"A local favourite is {dish}.")
    if yes_no and re.search(r"\bis there an? (?:famous|typical|traditional|local|popular)\b", q):
        return OracleReply(f"Yes, for example {dish}.")
    return UNSURE  # "Is the food spicy?": the facts do not say


def _climate(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    found = _CLIMATE_IS.search(q)
    if found and yes_no:
        category = _CLIMATE_WORDS[found.group("c") or found.group("d")]
        if city.climate == category:
            return OracleReply(f"Yes, the climate is {category}.")
        return OracleReply(f"No, the climate is not {category}.")
    if re.search(r"\bsnow(?:s|y|fall|ing)?\b", q):
        return _yes(city.snow, "Yes, it snows in winter.", "No, it rarely snows.")
    if re.search(r"\bmonsoons?\b", q):
        monsoon = city.area in ("South Asia", "Southeast Asia") and city.country != "Afghanistan"
        monsoon = monsoon or (city.area == "East Asia" and city.climate in ("subtropical", "tropical"))
        if monsoon:
            return OracleReply("Yes, heavy monsoon rains fall in summer.")
        if city.climate in ("temperate", "continental", "mediterranean", "arid"):
            return OracleReply("No, there is no monsoon season.")
        return UNSURE
    if re.search(r"\b(?:cold|freezing|chilly)\b", q):
        cold = city.climate == "continental" or city.snow
        return _yes(cold, "Yes, winters are cold.", "No, it is rarely cold.")
    if re.search(r"\btropical\b", q) and yes_no:
        return _yes(
            city.climate == "tropical", "Yes, the climate is tropical.", "No, the climate is not tropical."
        )
    if re.search(r"\b(?:desert|arid|dry)\b", q) and yes_no:
        return _yes(city.climate == "arid", "Yes, the climate is dry.", "No, it is not a dry place.")
    if re.search(r"\b(?:rain|rains|rainy|raining|rainfall|wet)\b", q) and yes_no:
        if city.climate == "arid":
            return OracleReply("No, it hardly ever rains.")
        if city.climate in ("tropical", "subtropical", "temperate"):
            return OracleReply("Yes, it rains a lot, especially in the rainy months.")
        return UNSURE
    if re.search(r"\bhumid(?:ity)?\b", q) and yes_no:
        if city.climate in ("tropical", "subtropical"):
            return OracleReply("Yes, it is humid, especially in summer.")
        if city.climate == "arid":
            return OracleReply("No, the air is mostly dry.")
        return UNSURE
    if re.search(r"\b(?:hot|warm)\b", q):
        if city.climate in ("tropical", "arid"):
            return OracleReply("Yes, it is hot for most of the year.")
        if re.search(r"\bsummers?\b", q) and city.climate in ("subtropical", "continental"):
            return OracleReply("Yes, summers are hot.")
        if re.search(r"\b(?:all year|year round|all the time|always|winter)\b", q) and yes_no:
            return OracleReply("No, it is not hot all year; winters are cool or mild.")
        if city.climate in ("subtropical", "mediterranean"):
            return OracleReply("Summers are hot, but winters are mild.")
        if city.climate == "continental":
            return OracleReply("Summers are warm, but winters are cold.")
        return OracleReply("No, it is rarely very hot.")
    if re.search(r"\b(?:climate|weather|temperature|temperatures|seasons?|sunny|summer|winter)\b", q):
        if yes_no:
            return UNSURE
        return OracleReply(CLIMATES[city.climate])
    return None


def _size(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if re.search(
        r"\b(?:population|populous|how many people|how big|how large|inhabitants|residents|people live|"
        r"size)\b",
        q,
    ):
        if yes_no:
            return UNSURE
        return OracleReply(f"About {max(1, round(city.population / 1e6))} million people live there.")
    if re.search(r"\b(?:big|large|huge) city\b", q) and yes_no:
        return OracleReply("Yes, it is one of the most populous cities in the world.")
    return None


def _landmark(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not re.search(
        r"\b(?:landmarks?|famous|known for|tourists?|sights?|sightseeing|monuments?|buildings?|attractions?|"
        r"visit|museums?|temples?|church|mosques?|towers?|architecture)\b",
        q,
    ):
        return None
    sight = city.landmarks[turn % len(city.landmarks)]
    if is_open:
        return OracleReply(f"One famous sight there is {sight}.")
    if yes_no and re.search(r"\b(?:is|are) there (?:a |an |any )?(?:famous|well known|popular)\b", q):
        return OracleReply(f"Yes, for example {sight}.")
    return UNSURE


def oracle_facts(city: City) -> str:
    """The city's facts as plain sentences, for a model oracle's system prompt."""

    def known(value: bool | None) -> str:
        return "not sure" if value is None else ("yes" if value else "no")

    river = {None: "not sure", False: "none of note"}.get(city.river, city.river)  # type: ignore[arg-type]
    lines = [
        f"City: {city.name}" + (f" (also called {', '.join(city.variants)})" if city.variants else ""),
        f"Country: {city.country}" + (f"; province/state: {city.region}" if city.region else ""),
        f"Continent: {_join(city.continents)}; part of the world: {city.area}",
        f"Hemispheres: {'northern' if city.latitude > 0 else 'southern'}, "
        f"{'eastern' if city.longitude > 0 else 'western'}",
        f"Population: about {max(1, round(city.population / 1e6))} million",
        f"National capital: {'yes' if city.capital else 'no'}",
        f"On the coast: {'yes' if city.coastal else 'no'}; seaport: {known(city.port)}",
        f"River: {river}; mountains nearby: {known(city.mountains)}; metro: {known(city.metro)}",
        f"Languages: {_join(city.languages)}",
        f"Climate: {city.climate}; snow in winter: {'yes' if city.snow else 'no'}",
        f"Landmarks: {'; '.join(city.landmarks)}",
        f"Dishes: {'; '.join(city.dishes)}",
        f"Sports: {', '.join(city.sports)}" + (f"; teams: {city.teams}" if city.teams else ""),
        f"Industry: {city.industry}",
        f"History: {city.history}",
        f"Festival: {city.festival}",
    ]
    return "\n".join(lines)


def oracle_messages(city: City, dialogue: Sequence[tuple[str, str]], question: str) -> list[dict[str, str]]:
    """The chat prompt for a model playing the oracle: facts + rules, the dialogue so far, the question."""
    forbidden = ", ".join(dict.fromkeys(city.secret_names))
    system = (
        "You are playing Guess My City. You are from the city below, and the other player asks you "
        "questions to find out which city it is.\n"
        f"{oracle_facts(city)}\n"
        "Answer each question truthfully in one or two short sentences, as a resident would; use your own "
        "knowledge of the city where the facts above say nothing. Never write the name of the city or of "
        f"the country, nor any other name for them ({forbidden}). If a question names them, answer yes or "
        "no without repeating the name. If the question guesses a different city, say no."
    )
    messages = [{"role": "system", "content": system}]
    for asked, answered in dialogue:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    messages.append({"role": "user", "content": question})
    return messages


# --- measuring the oracle ------------------------------------------------------------------------
_FIRST_WORD = re.compile(r"[\W_]*([A-Za-z]+)")


def polarity(text: str) -> bool | None:
    """True for an answer starting with yes, False for one starting with no, else None."""
    found = _FIRST_WORD.match(text)
    word = found.group(1).lower() if found else ""
    if word in ("yes", "yeah", "yep", "correct", "indeed"):
        return True
    if word in ("no", "nope", "not", "neither", "incorrect"):
        return False
    return None


def load_labels(path: Path | str) -> list[dict[str, Any]]:
    """A labelled set: one JSON object a line, ``{"city", "category", "question", "answer"}``.

    ``answer`` is ``"yes"`` / ``"no"`` (the literal truth of the question, negated ones included: "Is
    it not in Asia?" about Tokyo is ``"no"``), ``{"any": [...]}`` (an open question: a right answer
    contains one of these, case and accents ignored) or ``"unsure"`` (outside what the oracle knows:
    the only right reply is not sure)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def judge(label: dict[str, Any], reply: OracleReply) -> bool:
    """Whether a mapped ``reply`` is right by ``label``'s rule (see ``load_labels``)."""
    want = label["answer"]
    if want == "unsure":
        return not reply.mapped
    if isinstance(want, dict):
        text = strip_accents(reply.text).lower()
        return any(strip_accents(key).lower() in text for key in want["any"])
    return polarity(reply.text) is (want == "yes")


def oracle_accuracy(labels: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The built-in oracle on a labelled set: ``accuracy`` (right answers among mapped ones, "unsure"
    labels included: answering one is wrong), ``mapped`` (how many it answered), ``unmapped_share``
    (share of labels it was not sure about; on "unsure" labels that is right), ``wrong`` (the mapped
    answers that are wrong) and ``by_category`` (accuracy and count per label category)."""
    labels = list(labels)
    mapped = 0
    right = 0
    unsure = 0
    wrong: list[dict[str, Any]] = []
    by_category: dict[str, list[int]] = {}
    for label in labels:
        reply = oracle_answer(label["question"], CITIES[CITY_INDEX[label["city"]]])
        tally = by_category.setdefault(label.get("category", ""), [0, 0, 0])
        tally[2] += 1
        if not reply.mapped:
            unsure += 1
            if label["answer"] != "unsure":
                continue
        else:
            mapped += 1
            tally[1] += 1
        ok = judge(label, reply)
        if reply.mapped:
            right += ok
            tally[0] += ok
            if not ok:
                wrong.append({**label, "reply": reply.text})
    return {
        "accuracy": right / mapped if mapped else 1.0,
        "mapped": mapped,
        "labels": len(labels),
        "unmapped_share": unsure / len(labels) if labels else 0.0,
        "wrong": wrong,
        "by_category": {
            cat: {"accuracy": r / m if m else 1.0, "mapped": m, "labels": n}
            for cat, (r, m, n) in sorted(by_category.items())
        },
    }
