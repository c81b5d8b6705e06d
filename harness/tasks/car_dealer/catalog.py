"""Car Dealer's world: the buyer profile sets, the dealership's catalog, buyer profiles per episode.

Data lives in ``data/car_profiles.json`` (the paper code's sets: 10 personalities, 13 brands, 6 body
types, 8 features, 5 budgets, plus how the built-in buyer sounds per personality) and
``data/car_catalog.json`` (our 80-car inventory, every brand and body type the profiles use; MSRPs are
invented round numbers). Both are checked when read: a malformed entry raises ``CatalogError`` with
one line naming the file, the entry and what is wrong with it.

Episode ``index`` picks the buyer's (budget, personality) pair through ``lmrl.sampling.stratified_item``
over the 50 pairs with the budget as the category (``PROFILE_SALT``): every 5 consecutive episodes from
0 meet all five budgets, and 50 episodes meet every pair once. Brand, body type, features and the
buyer's hidden traits come from the episode seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lmrl.sampling import stratified_item

DATA = Path(__file__).parent.parent / "data"
CATALOG_PATH = DATA / "car_catalog.json"
PROFILES_PATH = DATA / "car_profiles.json"


# --- reading the data files ----------------------------------------------------------------------
class CatalogError(ValueError):
    """A car-dealer data file is malformed; the message names the file and the bad entry."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CatalogError(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a JSON object at the top level")
    return data


def _names(where: str, value: Any, allowed: tuple[str, ...] | None = None, empty: bool = False) -> list[str]:
    """``value`` as a list of distinct strings (from ``allowed`` when given), else a ``CatalogError``."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(f"{where} must be a list of names, not {value!r}")
    if not value and not empty:
        raise CatalogError(f"{where} must not be empty")
    if len(set(value)) != len(value):
        raise CatalogError(f"{where} repeats a name: {value!r}")
    unknown = [v for v in value if allowed is not None and v not in allowed]
    if unknown:
        raise CatalogError(f"{where} has unknown {unknown[0]!r} (known: {', '.join(allowed or ())})")
    return value


def _positive_int(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CatalogError(f"{where} must be a positive integer, not {value!r}")
    return value


def check_profile_sets(data: dict[str, Any], path: Path | str = PROFILES_PATH) -> dict[str, Any]:
    """The profile sets of ``car_profiles.json``, checked entry by entry (``CatalogError`` if bad)."""
    for key in ("brands", "types", "features"):
        _names(f"{path}: {key}", data.get(key))
    budgets = data.get("budgets")
    if not isinstance(budgets, list) or not budgets:
        raise CatalogError(f"{path}: budgets must be a non-empty list of dollar amounts, not {budgets!r}")
    for i, budget in enumerate(budgets):
        _positive_int(f"{path}: budgets[{i}]", budget)
    personalities = data.get("personalities")
    if not isinstance(personalities, dict) or not personalities:
        raise CatalogError(f"{path}: personalities must be an object: name -> how the buyer sounds")
    for name, voice in personalities.items():
        where = f"{path}: personalities[{name!r}]"
        if not isinstance(voice, dict):
            raise CatalogError(f"{where} must be an object, not {voice!r}")
        if not isinstance(voice.get("greeting"), str):
            raise CatalogError(f"{where}: greeting must be a string, not {voice.get('greeting')!r}")
        if not isinstance(voice.get("hostile"), bool):
            raise CatalogError(f"{where}: hostile must be true or false, not {voice.get('hostile')!r}")
        for key in ("prefixes", "suffixes"):
            words = voice.get(key)
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise CatalogError(f"{where}: {key} must be a list of strings, not {words!r}")
    return data


_SETS: dict[str, Any] = check_profile_sets(_read_json(PROFILES_PATH))

# --- the profile sets (paper code) ---------------------------------------------------------------
PERSONALITIES: tuple[str, ...] = tuple(_SETS["personalities"])
BRANDS: tuple[str, ...] = tuple(_SETS["brands"])
TYPES: tuple[str, ...] = tuple(_SETS["types"])
FEATURES: tuple[str, ...] = tuple(_SETS["features"])
BUDGETS: tuple[int, ...] = tuple(int(b) for b in _SETS["budgets"])
HOSTILE = frozenset(p for p, v in _SETS["personalities"].items() if v["hostile"])
# How the built-in buyer sounds: personality -> greeting, and tone words before / after some lines.
GREETINGS: dict[str, str] = {p: v["greeting"] for p, v in _SETS["personalities"].items()}
TONE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    p: (tuple(v["prefixes"]), tuple(v["suffixes"])) for p, v in _SETS["personalities"].items()
}


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


_CAR_FIELDS = ("brand", "model", "types", "msrp", "features", "year", "condition")


def check_car(entry: Any, where: str) -> Car:
    """One entry of ``car_catalog.json`` as a ``Car``, checked against the profile sets."""
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} must be an object, not {entry!r}")
    if isinstance(entry.get("brand"), str) and isinstance(entry.get("model"), str):
        where = f"{where} ({entry['brand']} {entry['model']})"
    missing = [key for key in _CAR_FIELDS[:5] if key not in entry]
    unknown = sorted(set(entry) - set(_CAR_FIELDS))
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown field(s) {', '.join(unknown)}"
        raise CatalogError(f"{where} {what} (fields: {', '.join(_CAR_FIELDS)}; year, condition optional)")
    if entry["brand"] not in BRANDS:
        raise CatalogError(f"{where}: brand {entry['brand']!r} is not one of the profile brands")
    if not isinstance(entry["model"], str) or not entry["model"].strip():
        raise CatalogError(f"{where}: model must be a name, not {entry['model']!r}")
    year, condition = entry.get("year"), entry.get("condition", "new")
    if year is not None:
        _positive_int(f"{where}: year", year)
    if not isinstance(condition, str) or (condition == "new") != (year is None):
        raise CatalogError(f"{where}: a pre-owned car has a year and a condition, a new one neither")
    return Car(
        brand=entry["brand"],
        model=entry["model"],
        types=tuple(_names(f"{where}: types", entry["types"], TYPES)),
        msrp=_positive_int(f"{where}: msrp", entry["msrp"]),
        features=tuple(_names(f"{where}: features", entry["features"], FEATURES, empty=True)),
        year=year,
        condition=condition,
    )


@lru_cache(maxsize=4)
def load_catalog(path: str | Path = CATALOG_PATH) -> tuple[Car, ...]:
    """The cars of a catalog file, every entry checked (``CatalogError`` names the first bad one)."""
    cars = _read_json(Path(path)).get("cars")
    if not isinstance(cars, list) or not cars:
        raise CatalogError(f"{path}: cars must be a non-empty list of cars")
    catalog = tuple(check_car(entry, f"{path}: cars[{i}]") for i, entry in enumerate(cars))
    seen: dict[str, int] = {}
    for i, car in enumerate(catalog):
        if car.model in seen:
            raise CatalogError(
                f"{path}: cars[{i}] ({car.name}): model {car.model!r} repeats cars[{seen[car.model]}]"
            )
        seen[car.model] = i
    return catalog


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


# Episode index -> (budget, personality): stratified by budget (the reward's main driver).
PROFILE_SALT = "car-dealer/2"
PAIRS: tuple[tuple[int, str], ...] = tuple((b, p) for b in BUDGETS for p in PERSONALITIES)
_PAIR_CATEGORIES: tuple[str, ...] = tuple(str(b) for b, _ in PAIRS)


def profile_pair(index: int) -> tuple[int, str]:
    """The (budget, personality) episode ``index`` plays (``lmrl.sampling.stratified_item``)."""
    return PAIRS[stratified_item(index, _PAIR_CATEGORIES, PROFILE_SALT)]


def draw_profile(rng: random.Random, index: int = 0) -> Profile:
    """Episode ``index``'s buyer: budget and personality by index, the rest drawn from ``rng``."""
    budget, personality = profile_pair(index)
    return Profile(
        personality=personality,
        brand=rng.choice(BRANDS),
        type=rng.choice(TYPES),
        features=tuple(rng.sample(FEATURES, rng.randint(1, 4))),
        budget=budget,
    )


def wanted_car(profile: Profile) -> str:
    return wanted_car_words(profile.brand, profile.type)


def wanted_car_words(brand: str, kind: str) -> str:
    """ "a Honda SUV", "an Audi electric car"."""
    article = "an" if brand[0] in "AEIOU" else "a"
    return f"{article} {brand} {type_phrase(kind)}"


def type_phrase(kind: str) -> str:
    return {"electric": "electric car", "luxury": "luxury car"}.get(kind, kind)


_COUNTABLE = frozenset({"backup camera", "navigation system", "sunroof"})


def feature_phrase(features: tuple[str, ...] | list[str]) -> str:
    items = [f"a {f}" if f in _COUNTABLE else f for f in features]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
