"""Guess My City's knowledge base: the 100 cities and their facts, read from data files and checked.

``data/cities.json`` (built by ``tools/build_cities.py``: population, coordinates, country, continent,
coast, capital, climate, languages, landmarks, dishes) and ``data/cities_extra.json`` (hand-written:
port, river, mountains, metro, sports and teams, industry, age, festival). A ``null`` there means "not
sure", and the oracle says so rather than guess. ``load_cities`` checks every entry and refuses a
malformed one with a one-line ``KnowledgeBaseError`` naming the city and the field.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmrl.tasks.question_game import DATA_DIR, KnowledgeBaseError, check_entry, load_json

DATA_PATH = DATA_DIR / "cities.json"
EXTRA_PATH = DATA_DIR / "cities_extra.json"
CLIMATES: dict[str, str] = {
    "tropical": "The climate is tropical: hot all year, with a rainy season.",
    "arid": "The climate is dry, with very little rain.",
    "subtropical": "The climate is humid subtropical: hot, humid summers and mild winters.",
    "mediterranean": "The climate is Mediterranean: warm, dry summers and mild, rainy winters.",
    "temperate": "The climate is temperate: mild summers, cool winters and rain all through the year.",
    "continental": "The climate is continental: hot summers and cold winters.",
    "highland": "It lies high up, so the weather is mild all year round.",
}


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


_CITY_SCHEMA: dict[str, Any] = {
    "rank": int,
    "geonameid": int,
    "name": str,
    "variants": list[str],
    "country": str,
    "region": str | None,
    "continents": list[str],
    "area": str,
    "latitude": float,
    "longitude": float,
    "population": int,
    "capital": bool,
    "coastal": bool,
    "climate": str,
    "snow": bool,
    "languages": list[str],
    "landmarks": list[str],
    "dishes": list[str],
}
_EXTRA_SCHEMA: dict[str, Any] = {
    "port": bool | None,
    "river": str | bool | None,
    "mountains": bool | None,
    "metro": bool | None,
    "sports": list[str],
    "teams": str | None,
    "industry": str,
    "old": bool | None,
    "history": str,
    "festival": str,
}
_FILE_SCHEMA: dict[str, Any] = {
    "about": str,
    "cities": list,
    "countries": dict[str, dict[str, list[str]]],
    "other_countries": list[str],
}


def load_cities(
    path: Path | str = DATA_PATH, extra_path: Path | str = EXTRA_PATH
) -> tuple[tuple[City, ...], tuple[str, ...], str]:
    """The cities (in rank order), the other countries of the world and the data's ``about`` text; a
    malformed entry in either file is a one-line ``KnowledgeBaseError`` naming it."""
    data = check_entry(load_json(path), _FILE_SCHEMA, f"{path}")
    extra = check_entry(load_json(extra_path), {"about": str, "cities": dict}, f"{extra_path}", ("about",))
    countries = data["countries"]
    cities = []
    for number, c in enumerate(data["cities"]):
        name = c.get("name") if isinstance(c, dict) else None
        where = f"{path}: city {name!r}" if name else f"{path}: city #{number + 1}"
        check_entry(c, _CITY_SCHEMA, where)
        for field in ("continents", "languages", "landmarks", "dishes"):
            if not c[field]:
                raise KnowledgeBaseError(f"{where}: field {field!r} is empty")
        if c["climate"] not in CLIMATES:
            raise KnowledgeBaseError(f"{where}: climate must be one of {', '.join(CLIMATES)}")
        if c["country"] not in countries or "variants" not in countries[c["country"]]:
            raise KnowledgeBaseError(f"{where}: country {c['country']!r} has no entry with variants")
        if name not in extra["cities"]:
            raise KnowledgeBaseError(f"{extra_path}: no entry for city {name!r}")
        more = check_entry(extra["cities"][name], _EXTRA_SCHEMA, f"{extra_path}: city {name!r}")
        if not more["sports"]:
            raise KnowledgeBaseError(f"{extra_path}: city {name!r}: field 'sports' is empty")
        facts = {key: value for key, value in {**c, **more}.items() if key != "geonameid"}
        facts = {key: tuple(value) if isinstance(value, list) else value for key, value in facts.items()}
        cities.append(City(**facts, country_variants=tuple(countries[c["country"]]["variants"])))
    return tuple(cities), tuple(data["other_countries"]), data["about"]


CITIES, OTHER_COUNTRIES, DATA_ABOUT = load_cities()
CITY_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CITIES)}


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
