"""The kb-oracle's question interpreter (``interpret``): what a twenty-questions question asks about.

Keyword patterns (``data/twenty_questions_vocabulary.json``) map a question to a predicate over KB
objects; "and" joins, "or" splits, "not" negates. A question is *mapped* only when every content word
is covered by a pattern or is a function word; a question with uncovered words ("Is it used at
Halloween?") is not guessed at. Comparisons ("bigger / heavier / taller than X") use the sizes and
weights of ``data/twenty_questions_sizes.json``; a reference it does not know, or two things within a
factor ``SIZE_MARGIN`` of each other, is not decided either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import NamedTuple

from lmrl.tasks.twenty_questions.knowledge import (
    KB,
    OBJECTS,
    KBObject,
    Measure,
    compact,
    guess_phrase,
    guess_target,
    load_sizes,
    load_vocabulary,
    normalize,
)

# A predicate answers True/False, or None where the knowledge base cannot decide (the oracle is then not
# sure; e.g. "bigger than" two things of about the same size).
Predicate = Callable[[KBObject], bool | None]


def _alt(phrases: Iterable[str], plural: bool = False) -> str:
    """A regex alternation of normalized phrases, longest first (so the most specific one wins)."""
    unique = sorted({normalize(p) for p in phrases if normalize(p)}, key=lambda p: (-len(p), p))
    suffix = r"(?:s|es)?" if plural else ""
    return "(?:" + "|".join(r"\s+".join(map(re.escape, p.split())) + suffix for p in unique) + ")"


def _has(field: str, value: str) -> Predicate:
    return lambda o: value in getattr(o, field)


def _trait(name: str) -> Predicate:
    return lambda o: name in o.traits


def _not(predicate: Predicate) -> Predicate:
    def negated(o: KBObject) -> bool | None:
        value = predicate(o)
        return None if value is None else not value

    return negated


_VOCAB = load_vocabulary()
# Each trait's question phrases (regex fragments over normalized text).
TRAIT_PATTERNS: dict[str, str] = _VOCAB["trait_patterns"]
PLACE_SYNONYMS: dict[str, list[str]] = _VOCAB["places"]
HOME_PLACES = frozenset(_VOCAB["home_places"])
INDOOR_PLACES = HOME_PLACES | frozenset(_VOCAB["indoor_places"])
OUTDOOR_PLACES = frozenset(_VOCAB["outdoor_places"])
MATERIAL_SYNONYMS: dict[str, list[str]] = _VOCAB["materials"]
_BARE_MATERIALS: list[str] = _VOCAB["bare_materials"]
COLOR_SYNONYMS: dict[str, list[str]] = _VOCAB["colors"]
BODY_SYNONYMS: dict[str, list[str]] = _VOCAB["body_parts"]
# A question about one body part also accepts things worn on these parts.
_BODY_ACCEPTS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in _VOCAB["body_accepts"].items()}
USE_SYNONYMS: dict[str, list[str]] = _VOCAB["uses"]
# Phrases meaning several uses at once ("Is it used for fun?").
_EXTRA_USES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _VOCAB["extra_uses"].items()}
# Use predicates widened by facts: food is "used for eating", things that are cooked "used in cooking".
_USE_ALSO: dict[str, Predicate] = {"eating": _trait("edible"), "cooking": _trait("cooked")}

FUNCTION_WORDS = frozenset(_VOCAB["function_words"])
_UNDECIDABLE = re.compile(r"\b(?:" + "|".join(_VOCAB["undecidable"]) + r")\b")


# --- sizes and weights: "bigger / heavier / taller than X" ---------------------------------------
MEASURES, SIZE_MARGIN = load_sizes()
_OBJECT_MEASURE: dict[str, Measure] = {o.name: MEASURES[next(iter(o.forms))] for o in OBJECTS}
_SIZE_WORDS = r"bigger|larger|taller|longer|heavier|wider|greater|smaller|shorter|lighter|tinier|littler"
_LESS = frozenset({"smaller", "shorter", "lighter", "tinier", "littler"})
_REF_LEAD = re.compile(
    r"^(?:(?:a|an|the|your|my|average|typical|normal|regular|standard|one|full\s+grown|grown|adult|"
    r"usual|ordinary|single|some)\s+)*"
)


def _reference(phrase: str) -> Measure | None:
    return MEASURES.get(compact(_REF_LEAD.sub("", phrase)))


def _ratio(obj: KBObject, ref: Measure, how: str) -> float:
    """How many times bigger ``obj`` is than ``ref`` by length, weight or overall bulk (the geometric mean
    of the length ratio and the cube root of the weight ratio)."""
    mine = _OBJECT_MEASURE[obj.name]
    by_cm = mine.cm / ref.cm
    if how == "cm" or not (mine.kg > 0 and ref.kg > 0):
        return by_cm
    by_kg = mine.kg / ref.kg
    return by_kg if how == "kg" else (by_cm * by_kg ** (1 / 3)) ** 0.5


def _compare(word: str, ref: Measure | None) -> Predicate:
    how = (
        "kg"
        if word in ("heavier", "lighter")
        else "cm"
        if word in ("taller", "longer", "shorter", "wider")
        else "bulk"
    )

    def bigger(o: KBObject) -> bool | None:
        if ref is None:
            return None
        ratio = _ratio(o, ref, how)
        if ratio == 1:
            return False  # the thing itself
        if ratio > SIZE_MARGIN:
            return word not in _LESS
        if ratio < 1 / SIZE_MARGIN:
            return word in _LESS
        return None  # about the same size: not decided

    return bigger


# --- questions -> attribute predicates ------------------------------------------------------------
class _Concept(NamedTuple):
    pattern: re.Pattern[str]
    build: Callable[[re.Match[str], str], tuple[str, Predicate]]


def _concepts() -> list[_Concept]:
    concepts: list[_Concept] = []

    def add(pattern: str, build: Callable[[re.Match[str], str], tuple[str, Predicate]]) -> None:
        concepts.append(_Concept(re.compile(r"\b(?:" + pattern + r")\b"), build))

    def fixed(label: str, predicate: Predicate) -> Callable[[re.Match[str], str], tuple[str, Predicate]]:
        return lambda m, q: (label, predicate)

    for name, pattern in TRAIT_PATTERNS.items():
        add(pattern, fixed(f"trait:{name}", _trait(name)))
    for category, synonyms in KB.categories.items():
        add(_alt((category, *synonyms), plural=True), fixed(f"category:{category}", _category(category)))
    add(
        r"natural(?:ly)?(?:\s+occurring)?|occurs?\s+naturally|(?:found\s+|occurs?\s+)?in\s+nature|"
        r"part\s+of\s+nature|made\s+by\s+nature|nature\s+made",
        fixed("natural", _not(_trait("man-made"))),
    )
    add(r"hard|rigid", fixed("not soft", _not(_trait("soft"))))
    add(r"solid", fixed("solid", lambda o: "water" not in o.materials and "cannot touch" not in o.traits))
    add(r"cheap|inexpensive|affordable", fixed("not expensive", _not(_trait("expensive"))))
    add(
        r"light(?:\s*weight)?|light\s+to\s+carry|weighs?\s+(?:little|very\s+little)",
        fixed("not heavy", _not(_trait("heavy"))),
    )
    add(
        r"touch(?:\s+(?:it|them))?|tangible|physical(?:\s+(?:object|thing))?",
        fixed("tangible", _not(_trait("cannot touch"))),
    )
    add(
        r"play(?:ed)?\s+(?:it|them)|played|(?:can|you|people)\s+play",
        fixed("use:play|music|sport", _uses("play", "music", "sport")),
    )
    add(
        r"(?:write|writes|writing|draw|drawing|paint|painting)\s+on(?:\s+(?:it|them))?|writing\s+surface",
        fixed("write on", lambda o: "paper" in o.materials or "painting" in o.uses and "flat" in o.traits),
    )
    add(r"drinks?|beverages?|drinkable", fixed("drink", lambda o: False))
    add(
        r"(?:associated\s+with|related\s+to|involves?|has\s+to\s+do\s+with|connected\s+to)\s+water|"
        r"water\s+related",
        fixed("water", lambda o: "water" in o.found or "water" in o.materials or "watering" in o.uses),
    )
    add(
        r"household(?:\s+(?:items?|objects?|things?|appliances?|goods))?|home\s+appliance",
        fixed("place:home", _place("home")),
    )

    def land(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        if "animal" in m.group(0):
            return "category:Animals&land", lambda o: o.category == "Animals" and "water" not in o.found
        if re.search(r"\b(?:live|lives|living)\b", q):
            return "trait:alive&land", lambda o: "alive" in o.traits and "water" not in o.found
        return "land", lambda o: "water" not in o.found

    add(r"(?:on|in)\s+land|land\s+animal|terrestrial", land)
    add(
        r"sea\s+(?:animal|creature)s?|marine(?:\s+animal)?|aquatic|ocean\s+animal|water\s+animal",
        fixed("category:Animals&place:water", lambda o: o.category == "Animals" and "water" in o.found),
    )

    place_alt = _alt(s for synonyms in PLACE_SYNONYMS.values() for s in synonyms)
    place_of = {normalize(s): place for place, synonyms in PLACE_SYNONYMS.items() for s in synonyms}
    determiners = r"(?:(?:the|a|an|your|my|our|most|some|every|any|peoples|someones|many|its|their)\s+)*"

    def place(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        where = place_of[re.sub(r"\s+", " ", m.group("place"))]
        predicate = _place(where)
        if re.search(r"\b(?:live|lives|living)\b", q[: m.start()]):
            return f"trait:alive&place:{where}", lambda o: "alive" in o.traits and predicate(o)
        return f"place:{where}", predicate

    add(
        r"(?:in|on|at|inside|near|around|from|into|within|by|under|across|throughout)\s+"
        + determiners
        + r"(?P<place>"
        + place_alt
        + r")",
        place,
    )
    add(r"outside|outdoors?|out\s+of\s+doors", fixed("place:outdoors", _place("outdoors")))
    add(
        r"indoors?|inside\s+(?:a\s+|the\s+)?(?:house|home|building)|inside$",
        fixed("indoors", _indoors),
    )
    add(r"underwater", fixed("place:water", _place("water")))

    material_alt = _alt(s for synonyms in MATERIAL_SYNONYMS.values() for s in synonyms)
    material_of = {normalize(s): mat for mat, synonyms in MATERIAL_SYNONYMS.items() for s in synonyms}

    def material(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        word = re.sub(r"\s+", " ", m.group("mat") or m.group("bare"))
        if word in ("gold", "golden", "silver") and m.group("bare"):
            value = "gold" if word != "silver" else "silver"
            return f"color|material:{value}", lambda o: value in o.colors or value in o.materials
        mat = material_of[word]
        return f"material:{mat}", _material(mat)

    add(
        r"(?:made|built|constructed|consists?|composed|formed|crafted|manufactured|contains?|has|have)\s+"
        r"(?:(?:mostly|mainly|primarily|entirely|partly|partially|completely|usually|mostly|any|some)\s+)*"
        r"(?:(?:of|from|with|out\s+of|in)\s+)?(?:(?:a|an|the|some|any)\s+)?(?P<mat>" + material_alt + r")"
        r"|(?P<bare>" + _alt(_BARE_MATERIALS) + r")",
        material,
    )

    color_alt = _alt(s for synonyms in COLOR_SYNONYMS.values() for s in synonyms)
    color_of = {normalize(s): color for color, synonyms in COLOR_SYNONYMS.items() for s in synonyms}

    def color(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        value = color_of[re.sub(r"\s+", " ", m.group("color"))]
        return f"color:{value}", lambda o: value in o.colors or "multicolored" in o.colors

    add(r"(?<!\ban\s)(?P<color>" + color_alt + r")(?:\s+(?:in\s+)?colou?r(?:ed)?)?", color)

    # Any reference phrase up to a conjunction or the end; one the sizes data does not know is not decided.
    ref = r"(?P<ref>[a-z0-9]+(?:\s+[a-z0-9]+)*?)(?=\s+(?:and|or|but|when|if|because|so)\b|$)"

    def compare(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        word, phrase = m.group("cmp"), " ".join(m.group("ref").split())
        known = _reference(phrase)
        return f"{word} than {phrase}" + ("" if known else " (unknown)"), _compare(word, known)

    add(r"(?P<cmp>" + _SIZE_WORDS + r")\s+than\s+" + ref, compare)

    def same_size(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        phrase = " ".join(m.group("ref").split())
        known = _reference(phrase)

        def about(o: KBObject) -> bool | None:
            return None if known is None else 1 / SIZE_MARGIN <= _ratio(o, known, "bulk") <= SIZE_MARGIN

        return f"size of {phrase}" + ("" if known else " (unknown)"), about

    add(
        r"(?:(?:about|around|roughly)\s+)?(?:the\s+)?(?:size\s+of|as\s+(?:big|large)\s+as|same\s+size\s+as|"
        r"similar\s+(?:in\s+)?size\s+(?:to|as))\s+" + ref,
        same_size,
    )
    add(r"(?:used|played|play)\s+with\s+(?:a\s+|the\s+)?balls?|ball\s+sports?|ball\s+games?", ball_sport)
    add(
        r"domestic(?:ated)?(?:\s+animals?)?|tame",
        fixed("pet|farm animal", _or([_trait("pet"), _trait("farm animal")])),
    )
    add("|".join(_VOCAB["undecidable"]), lambda m, q: (f"undecidable:{m.group(0)}", lambda o: None))
    size_words = {
        r"tiny|very\s+small|minuscule|microscopic": ("size<=0", lambda o: o.size <= 0),
        r"small|little": ("size<=1", lambda o: o.size <= 1),
        r"medium(?:\s+sized)?|mid\s+sized": ("size==2", lambda o: o.size == 2),
        r"big|large": ("size>=3", lambda o: o.size >= 3),
        r"huge|enormous|giant|gigantic|massive|very\s+(?:big|large)": ("size>=4", lambda o: o.size >= 4),
    }
    for pattern, (label, predicate) in size_words.items():
        add(pattern, fixed(label, predicate))
    add(
        r"fits?\s+in\s+(?:your\s+|a\s+|one\s+|the\s+)?(?:hand|palm|pocket)|hold\s+(?:it\s+|them\s+)?in\s+"
        r"(?:your\s+|one\s+|a\s+)?hand|handheld|hand\s+held|one\s+hand|pocket\s+sized|"
        r"carry\s+(?:it\s+)?in\s+(?:your\s+|a\s+)?pocket",
        fixed("size<=1", lambda o: o.size <= 1),
    )
    add(
        r"(?:carry|lift|pick\s+up|move)\s+(?:it|them)(?:\s+up)?|portable|carried|lifted|movable|moveable",
        fixed("size<=3", lambda o: o.size <= 3),
    )

    body_alt = _alt(s for synonyms in BODY_SYNONYMS.values() for s in synonyms)
    body_of = {normalize(s): part for part, synonyms in BODY_SYNONYMS.items() for s in synonyms}

    def body(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        part = body_of[re.sub(r"\s+", " ", m.group("part"))]
        accepts = _BODY_ACCEPTS.get(part, frozenset({part}))
        return f"worn_on:{part}", lambda o: bool(o.worn_on & accepts)

    add(
        r"(?:on|around|over|in|at)\s+(?:(?:your|the|a|ones|peoples|someones|my|their|his|her)\s+)*"
        r"(?P<part>" + body_alt + r")",
        body,
    )

    numbers = {
        "no": 0,
        "zero": 0,
        "one": 1,
        "a": 1,
        "two": 2,
        "three": 3,
        "four": 4,
        "five": 5,
        "six": 6,
        "eight": 8,
    }

    def count(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        what = "legs" if m.group("what").startswith("leg") else "wheels"
        n = m.group("n")
        if n.startswith("more than"):
            limit = numbers[n.split()[-1]]
            return f"{what}>{limit}", lambda o: getattr(o, what) > limit
        if n == "many":
            return f"{what}>=6", lambda o: getattr(o, what) >= 6
        value = int(n) if n.isdigit() else numbers[n]
        return f"{what}=={value}", lambda o: getattr(o, what) == value

    add(
        r"(?P<n>no|zero|one|two|three|four|five|six|eight|\d+|many|more\s+than\s+(?:two|four))\s+"
        r"(?P<what>legs?|wheels?)",
        count,
    )
    add(r"legs?", fixed("legs>0", lambda o: o.legs > 0))
    add(r"wheels?|wheeled", fixed("wheels>0", lambda o: o.wheels > 0))

    use_of: dict[str, tuple[str, ...]] = {
        normalize(s): (use,) for use, synonyms in USE_SYNONYMS.items() for s in synonyms
    }
    use_of.update(_EXTRA_USES)
    use_alt = _alt(use_of)

    def use(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        phrase = next(g for g in (m.group("use"), m.group("use2"), m.group("use3")) if g)
        uses = use_of[re.sub(r"\s+", " ", phrase)]
        return "use:" + "|".join(uses), _uses(*uses)

    fillers = (
        r"(?:(?:it|them|to|for|in|when|while|as|during|with|by|people|you|mainly|mostly|primarily|usually|"
        r"often|the|a|an|make|making|do|doing|play|playing|things|something)\s+){0,4}"
    )
    add(
        r"(?:used|use|using|useful|uses|for|helps?|good)\s+" + fillers + r"(?P<use>" + use_alt + r")"
        r"|(?P<use2>" + use_alt + r")\s+(?:with|using)\s+(?:it|them|this)"
        r"|(?:purpose|function|job)\s+(?:is\s+)?(?:to\s+|for\s+)?(?P<use3>" + use_alt + r")",
        use,
    )
    return concepts


# Sports played with a ball (ice hockey uses a puck, field hockey a ball: not decided).
_BALL_SPORTS = frozenset({"basketball", "soccer", "football", "baseball", "tennis", "golf"})


def ball_sport(m: re.Match[str], q: str) -> tuple[str, Predicate]:
    def used_with_ball(o: KBObject) -> bool | None:
        if "hockey" in o.uses:
            return None
        return bool(o.uses & _BALL_SPORTS) or "ball" in o.traits

    return "ball sport", used_with_ball


def _indoors(o: KBObject) -> bool | None:
    """Indoors when found only indoors, not when found only outdoors, undecided for both."""
    inside, outside = bool(o.found & INDOOR_PLACES), bool(o.found & OUTDOOR_PLACES)
    return None if inside and outside else inside


def _and(predicates: list[Predicate]) -> Predicate:
    """Three-valued "and": False if any is False, else undecided if any is undecided."""

    def both(o: KBObject) -> bool | None:
        values = [p(o) for p in predicates]
        return False if False in values else None if None in values else True

    return both


def _or(predicates: list[Predicate]) -> Predicate:
    """Three-valued "or": True if any is True, else undecided if any is undecided."""

    def either(o: KBObject) -> bool | None:
        values = [p(o) for p in predicates]
        return True if True in values else None if None in values else False

    return either


def _category(name: str) -> Predicate:
    return lambda o: o.category == name


def _uses(*uses: str) -> Predicate:
    wanted = frozenset(uses)
    extra = [_USE_ALSO[u] for u in uses if u in _USE_ALSO]
    return lambda o: bool(o.uses & wanted) or any(p(o) for p in extra)


def _material(mat: str) -> Predicate:
    if mat == "metal":
        return lambda o: bool(o.materials & {"metal", "gold", "silver"})
    return _has("materials", mat)


def _place(where: str) -> Predicate:
    if where == "home":
        return lambda o: bool(o.found & HOME_PLACES)
    if where == "outdoors":
        return lambda o: bool(o.found & OUTDOOR_PLACES)
    return _has("found", where)


_CONCEPTS = _concepts()
_NEGATION = re.compile(
    r"\b(?:not|never|cannot|cant|dont|doesnt|isnt|wont|arent|wouldnt|couldnt|neither|nor)\b"
)
_TAG_NEGATIVE = re.compile(
    r"^(?:(?:so|ok|okay|then|and|well)\s+)*(?:isnt|doesnt|cant|dont|arent|wouldnt|couldnt|wont|hasnt|havent)\b"
)
_OR = re.compile(r"\bor\b")
_GENERIC_THINGS = frozenset(
    {
        "object",
        "thing",
        "item",
        "physical object",
        "physical thing",
        "real object",
        "real thing",
        "something",
        "an object",
        "solid object",
        "everyday object",
        "common object",
        "household object",
    }
)


class Interpretation(NamedTuple):
    """What the kb-oracle checks for a question: ``predicate`` is ``None`` when it cannot map it."""

    predicate: Predicate | None
    attribute: str | None


def _match_spans(text: str) -> list[tuple[int, int, str, Predicate]]:
    """Non-overlapping concept matches in ``text``, longest first, returned in text order."""
    found: list[tuple[int, int, str, Predicate]] = []
    for concept in _CONCEPTS:
        for m in concept.pattern.finditer(text):
            if m.end() > m.start():
                label, predicate = concept.build(m, text)
                found.append((m.start(), m.end(), label, predicate))
    found.sort(key=lambda s: (-(s[1] - s[0]), s[0]))
    chosen: list[tuple[int, int, str, Predicate]] = []
    for span in found:
        if all(span[1] <= c[0] or span[0] >= c[1] for c in chosen):
            chosen.append(span)
    return sorted(chosen)


def uncovered_words(text: str, spans: list[tuple[int, int, str, Predicate]]) -> list[str]:
    """Words of normalized ``text`` that no span covers and that are not function words: what the oracle
    would be ignoring if it answered (so it does not)."""
    return [
        m.group()
        for m in re.finditer(r"[a-z0-9]+", text)
        if m.group() not in FUNCTION_WORDS and not any(s <= m.start() < e for s, e, *_ in spans)
    ]


def _interpret_part(text: str) -> tuple[str, Predicate] | None:
    target = guess_target(text)
    if target is not None:
        return f"name:{target.name}", (lambda o, t=target: o is t)
    found = guess_phrase(text)
    if found is not None and found[0] in _GENERIC_THINGS:
        return "tangible", _not(_trait("cannot touch"))
    spans = _match_spans(text)
    if not spans or uncovered_words(text, spans):
        return None
    negated = [] if _TAG_NEGATIVE.match(text) else [m.end() for m in _NEGATION.finditer(text)]
    labels: list[str] = []
    predicates: list[Predicate] = []
    for start, _end, label, predicate in spans:
        if any(n <= start and not any(n <= s < start for s, *_ in spans) for n in negated):
            label, predicate = f"not({label})", _not(predicate)
        if label not in labels:
            labels.append(label)
            predicates.append(predicate)
    if len(predicates) == 1:
        return labels[0], predicates[0]
    return " & ".join(labels), _and(predicates)


@lru_cache(maxsize=16384)
def interpret(question: str) -> Interpretation:
    """Map a question to a predicate over KB objects (see the module docstring)."""
    text = normalize(question)
    text = re.sub(r"\s+or\s+not$", "", text)
    text = re.sub(r"^((?:is|does|can|could|would|will|do|are)\s+(?:it|they|you)\s+)either\s+", r"\1", text)
    parts = [p.strip() for p in _OR.split(text)]
    if len(parts) > 1 and guess_target(text) is None:
        # "X or Y": every alternative must be understood, else the question is not.
        mapped = [_interpret_part(p) for p in parts if p]
        if all(m is not None for m in mapped) and len(mapped) > 1:
            return Interpretation(_or([m[1] for m in mapped if m]), " | ".join(m[0] for m in mapped if m))
        return Interpretation(None, None)
    whole = _interpret_part(text)
    if whole is None:
        return Interpretation(None, None)
    return Interpretation(whole[1], whole[0])
