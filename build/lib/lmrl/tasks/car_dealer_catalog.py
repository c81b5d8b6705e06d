"""Car Dealer's world: the buyer profile sets, the dealership's catalog, buyer profiles per episode.

Data lives in ``data/car_profiles.json`` (the paper code's sets: 10 personalities, 13 brands, 6 body
types, 8 features, 5 budgets, plus how the built-in buyer sounds per personality) and
``data/car_catalog.json`` (our 80-car inventory, every brand and body type the profiles use; MSRPs are
invented round numbers).

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

DATA = Path(__file__).parent / "data"
CATALOG_PATH = DATA / "car_catalog.json"
PROFILES_PATH = DATA / "car_profiles.json"
_SETS: dict[str, Any] = json.loads(PROFILES_PATH.read_text(encoding="utf-8"))

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
