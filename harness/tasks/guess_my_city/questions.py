"""How Guess My City reads a question: its sentences, the slot of "Is it in X?" / "Are you from X?" /
"Is it X?" templates, the places the oracle knows, and whether a question guesses the city.

**Correct guess** (``is_correct_guess``): a guess form ("Is the city you are from X?", "Is it X?", "Are
you from X?", "Do you live in X?", "Is it in X?", "My guess is X", a bare "X?") where X is the city's name
or an accepted variant (Bombay, NYC, St. Petersburg, ...), accents, case and punctuation ignored,
optionally followed by "city" or the city's country ("Tokyo, Japan"); names of 7+ letters also match with
one typo when no other city's name is that close. Anything else in the slot is not a guess ("Is it near
Tokyo?", "Tokyo or Osaka", "New York State", "Kyoto" for Tokyo).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from lmrl.tasks.guess_my_city.knowledge import CITIES, CITY_INDEX, OTHER_COUNTRIES, City, normalize

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


# --- guesses -------------------------------------------------------------------------------------
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


def names_city(slot: str, index: int) -> bool:
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


def is_correct_guess(question: str, city: City) -> bool:
    """Whether ``question`` guesses ``city`` (rules in the module docstring)."""
    return _is_correct_guess(question, CITY_INDEX[city.name])


@lru_cache(maxsize=1 << 16)
def _is_correct_guess(question: str, index: int) -> bool:
    cut = re.sub(r"\([^)]*\)", " ", question)
    if "?" in cut:
        cut = cut[: cut.rindex("?") + 1]
    parts = sentences(cut)
    for start in range(len(parts)):
        for _, slot in slots(" ".join(parts[start:])):
            if names_city(slot, index):
                return True
    return False
