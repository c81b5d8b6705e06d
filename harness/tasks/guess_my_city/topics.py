"""The topics Guess My City's built-in oracle answers, one function each (``TOPICS``, in the order they
are tried): population, language, continent, hemisphere, capital, sport, river, port, altitude, coast,
mountains, metro, industry, history, festival, food, climate, size and landmarks.

Each topic gets the normalized question ``q``, the city, whether the question is a yes/no one
(``yes_no``) or an open one (``is_open``) and the turn (which landmark or dish to mention), and returns
an answer, ``UNSURE`` (the topic, but a fact we do not have), or ``None`` (not this topic). Order
matters: sports before sights ("a famous team"), river and port before the coast.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lmrl.tasks.guess_my_city.knowledge import CITIES, CLIMATES, City, normalize

UNMAPPED_REPLY = "I'm not sure how to answer that; ask me something else."


@dataclass(frozen=True, slots=True)
class OracleReply:
    text: str
    mapped: bool = True


UNSURE = OracleReply(UNMAPPED_REPLY, False)
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
LANGUAGES: dict[str, tuple[str, ...]] = {
    **{normalize(lang): (lang,) for city in CITIES for lang in city.languages},
    **{normalize(lang): (lang,) for lang in _EXTRA_LANGUAGES},
    **_LANGUAGE_ALIASES,
}
_LANGUAGE_WORDS = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, LANGUAGES), key=len, reverse=True)) + r")\b"
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
SPORT_WORDS = re.compile(r"\b(" + "|".join(map(re.escape, _SPORT_NAMES)) + r")\b")
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


def join_names(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def yes_no_reply(truth: bool, yes: str, no: str) -> OracleReply:
    return OracleReply(yes if truth else no)


def _flag(truth: bool | None, yes: str, no: str) -> OracleReply:
    """A yes/no answer from a fact that may be unknown (``None``: not sure)."""
    return UNSURE if truth is None else OracleReply(yes if truth else no)


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
        return yes_no_reply(
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
        spoken = [lang for word in named for lang in LANGUAGES[word] if lang in city.languages]
        label = LANGUAGES[named[0]][0] if named[0] not in _LANGUAGE_ALIASES else named[0].capitalize()
        if spoken:
            return OracleReply(f"Yes, people there speak {join_names(spoken)}.")
        return OracleReply(f"No, {label} is not a main language there.")
    if yes_no:
        return UNSURE
    return OracleReply(f"Most people there speak {join_names(city.languages)}.")


def _continent(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if re.search(r"\b(?:two|2|both|several|multiple|more than one) continents\b", q) and yes_no:
        many = len(city.continents) > 1
        return yes_no_reply(
            many, f"Yes, it spans {join_names(city.continents)}.", "No, it lies on one continent."
        )
    if not re.search(r"\bcontinents?\b", q):
        return None
    if yes_no:
        return UNSURE
    if len(city.continents) > 1:
        return OracleReply(f"It spans two continents, {join_names(city.continents)}.")
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
            return yes_no_reply(truth, yes, no)
    if re.search(r"\b(?:near|close to|on) the equator\b", q):
        if abs(city.latitude) < 10:
            return OracleReply("Yes, it lies close to the equator.")
        if abs(city.latitude) > 23.44:
            return OracleReply("No, it lies outside the tropics.")
        return UNSURE
    if re.search(r"\btropics\b|\bequator\b", q):
        return yes_no_reply(
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
    return yes_no_reply(
        city.capital, "Yes, it is the capital of its country.", "No, it is not the national capital."
    )


def _sport_key(name: str) -> str:
    return _SPORT_SAME.get(name, name)


def _plays(city: City, sport: str) -> bool:
    """Whether ``sport`` is among the city's most followed ones ("rugby" matches "rugby league")."""
    sport = _sport_key(sport)
    return any(sport == _sport_key(s.lower()) or sport in s.lower() for s in city.sports)


def _sport(q: str, city: City, yes_no: bool, is_open: bool, turn: int) -> OracleReply | None:
    if not _SPORT_TOPIC.search(q) or re.search(r"\b(?:river|rivers)\b", q):
        return None
    named = [_sport_key(s) for s in SPORT_WORDS.findall(q)]
    about_teams = bool(re.search(r"\b(?:teams?|clubs?|franchises?)\b", q))
    popular = f"The most followed sport there is {city.sports[0]}" + (
        f", followed by {join_names(city.sports[1:])}." if len(city.sports) > 1 else "."
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
        return yes_no_reply(not city.coastal, "Yes, it is inland.", "No, it lies on the coast.")
    if re.search(r"\b(?:coast|coastal|coastline|sea|seaside|ocean|beach|beaches|shore|seafront)\b", q):
        if not yes_no and not is_open:
            return UNSURE
        return yes_no_reply(city.coastal, "Yes, it lies on the coast.", "No, it is inland.")
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
    return yes_no_reply(city.metro, "Yes, it has a metro system.", "No, it has no metro system.")


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
        return yes_no_reply(city.snow, "Yes, it snows in winter.", "No, it rarely snows.")
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
        return yes_no_reply(cold, "Yes, winters are cold.", "No, it is rarely cold.")
    if re.search(r"\btropical\b", q) and yes_no:
        return yes_no_reply(
            city.climate == "tropical", "Yes, the climate is tropical.", "No, the climate is not tropical."
        )
    if re.search(r"\b(?:desert|arid|dry)\b", q) and yes_no:
        return yes_no_reply(city.climate == "arid", "Yes, the climate is dry.", "No, it is not a dry place.")
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


Topic = Callable[[str, City, bool, bool, int], "OracleReply | None"]
TOPICS: tuple[Topic, ...] = (
    _population, _language, _continent, _hemisphere, _capital, _sport, _river, _port, _altitude, _coast,
    _mountains, _metro, _industry, _history, _festival, _food, _climate, _size, _landmark,
)  # fmt: skip
