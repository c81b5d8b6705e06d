"""The twenty-questions knowledge: the objects, their names, the vocabulary and sizes the kb-oracle reads
questions with, the scripted questioners' question bank, and which object a question names.

* ``data/twenty_questions_objects.json``: 158 objects with category, variants and attributes
  (``load_knowledge_base``).
* ``data/twenty_questions_sizes.json``: every object's typical size (cm) and weight (kg) and those of
  common things questions compare with ("a golf ball", "a car") (``load_sizes``).
* ``data/twenty_questions_vocabulary.json``: the phrases and patterns of the question interpreter
  (``load_vocabulary``); ``data/twenty_questions_question_bank.json``: the policies' questions
  (``load_question_bank``).

Every loader checks its file and refuses a malformed entry with a one-line ``KnowledgeBaseError`` that
names it. **Guesses** (``is_correct_guess``, ``guess_target``): a question names an object when, framing
words ("Is it", "My guess is", "a pair of") removed, what remains is one of its names (package docstring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from lmrl.tasks.question_game import DATA_DIR, KnowledgeBaseError, check_entry, load_json

DATA_PATH = DATA_DIR / "twenty_questions_objects.json"
SIZES_PATH = DATA_DIR / "twenty_questions_sizes.json"
VOCABULARY_PATH = DATA_DIR / "twenty_questions_vocabulary.json"
QUESTION_BANK_PATH = DATA_DIR / "twenty_questions_question_bank.json"
SIZES: tuple[str, ...] = ("tiny", "small", "medium", "large", "huge", "enormous")


# --- text normalization --------------------------------------------------------------------------
_APOSTROPHE = re.compile(r"['’‘`´]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    """Lower case, apostrophes dropped ("rubik's" -> "rubiks"), everything else that is not a letter or
    digit turned into single spaces ("T.V.?" -> "t v", "yo-yo" -> "yo yo")."""
    text = _APOSTROPHE.sub("", text.lower()).replace("&", " and ")
    return _NON_ALNUM.sub(" ", text).strip()


def compact(text: str) -> str:
    return text.replace(" ", "")


def name_forms(name: str) -> frozenset[str]:
    """Spacing-free forms of a name that count as naming it: the name and simple plurals/singulars
    of its last word ("shoe", "shoes"; "cherry", "cherries"; "tomato", "tomatoes")."""
    words = normalize(name).split()
    if not words:
        return frozenset()
    head, last = "".join(words[:-1]), words[-1]
    forms = {last, last + "s", last + "es"}
    if last.endswith("y") and len(last) > 2 and last[-2] not in "aeiou":
        forms.add(last[:-1] + "ies")
    if last.endswith("ies"):
        forms.add(last[:-3] + "y")
    if last.endswith("es"):
        forms.add(last[:-2])
    if last.endswith("s") and not last.endswith("ss"):
        forms.add(last[:-1])
    return frozenset(head + form for form in forms if form)


# --- the knowledge base --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KBObject:
    name: str
    category: str
    index: int
    variants: tuple[str, ...]
    article: str
    size: int  # index into SIZES
    materials: frozenset[str]
    found: frozenset[str]
    uses: frozenset[str]
    colors: frozenset[str]
    traits: frozenset[str]
    worn_on: frozenset[str]
    legs: int
    wheels: int
    forms: frozenset[str]  # spacing-free accepted names (see ``name_forms``)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.variants)

    @property
    def label(self) -> str:
        """How the object is written in a sentence: "a basketball", "shoes", "the sun"."""
        name = self.name.lower()
        return f"{self.article} {name}" if self.article else name

    def guess_question(self) -> str:
        return f"Is it {self.label}?"


@dataclass(frozen=True)
class KnowledgeBase:
    objects: tuple[KBObject, ...]
    categories: dict[str, tuple[str, ...]]  # category name -> synonyms, in file order
    counts: dict[str, int]  # category name -> declared count
    vocab: dict[str, frozenset[str]]  # sizes, materials, places, uses, colors, body_parts, traits


_FIELDS = {  # object field -> the vocabulary list its values come from
    "materials": "materials",
    "found": "places",
    "uses": "uses",
    "colors": "colors",
    "traits": "traits",
    "worn_on": "body_parts",
}
_OBJECT_SCHEMA: dict[str, Any] = {
    "name": str,
    "variants": list[str],
    "article": str,
    "size": str,
    "legs": int,
    "wheels": int,
    **{field: list[str] for field in _FIELDS},
}
_CATEGORY_SCHEMA: dict[str, Any] = {
    "name": str,
    "count": int,
    "synonyms": list[str],
    "defaults": dict[str, list[str]],
    "objects": list,
}
_KB_SCHEMA: dict[str, Any] = {
    "about": str,
    "sizes": dict[str, str],
    "materials": dict[str, str],
    "places": dict[str, str],
    "uses": list[str],
    "colors": list[str],
    "body_parts": list[str],
    "traits": dict[str, str],
    "categories": list,
}


def load_knowledge_base(path: Path | str = DATA_PATH) -> KnowledgeBase:
    """Read and validate the knowledge-base JSON (see its ``about`` field for the layout); a malformed
    entry is a one-line ``KnowledgeBaseError`` naming it."""
    data = check_entry(load_json(path), _KB_SCHEMA, f"{path}", optional=("about",))
    vocab = {
        "sizes": frozenset(data["sizes"]),
        "materials": frozenset(data["materials"]),
        "places": frozenset(data["places"]),
        "uses": frozenset(data["uses"]),
        "colors": frozenset(data["colors"]),
        "body_parts": frozenset(data["body_parts"]),
        "traits": frozenset(data["traits"]),
    }
    if tuple(data["sizes"]) != SIZES:
        raise KnowledgeBaseError(f"{path}: sizes must be {', '.join(SIZES)} in this order")
    objects: list[KBObject] = []
    categories: dict[str, tuple[str, ...]] = {}
    counts: dict[str, int] = {}
    for number, category in enumerate(data["categories"]):
        name = category.get("name") if isinstance(category, dict) else None
        where = f"{path}: category {name!r}" if name else f"{path}: category #{number + 1}"
        check_entry(category, _CATEGORY_SCHEMA, where, optional=("synonyms", "defaults"))
        cname = category["name"]
        if cname in categories:
            raise KnowledgeBaseError(f"{path}: category {cname!r} listed twice")
        categories[cname] = tuple(category.get("synonyms", ()))
        counts[cname] = category["count"]
        defaults = category.get("defaults", {})
        if set(defaults) - set(_FIELDS):
            raise KnowledgeBaseError(
                f"{where}: unknown default field(s) {sorted(set(defaults) - set(_FIELDS))}"
            )
        if len(category["objects"]) != counts[cname]:
            raise KnowledgeBaseError(
                f"{where} declares {counts[cname]} objects but lists {len(category['objects'])}"
            )
        for entry in category["objects"]:
            objects.append(_kb_object(entry, cname, defaults, vocab, len(objects), f"{path}"))
    owner: dict[str, str] = {}
    for obj in objects:
        for form in obj.forms:
            if owner.setdefault(form, obj.name) != obj.name:
                raise KnowledgeBaseError(f"{path}: {form!r} names both {owner[form]!r} and {obj.name!r}")
    return KnowledgeBase(tuple(objects), categories, counts, vocab)


def _kb_object(
    entry: Any,
    category: str,
    defaults: dict[str, list[str]],
    vocab: dict[str, frozenset[str]],
    index: int,
    path: str,
) -> KBObject:
    name = entry.get("name", "") if isinstance(entry, dict) else ""
    where = f"{path}: object {name!r} ({category})"
    check_entry(entry, _OBJECT_SCHEMA, where, optional=("variants", "article", "legs", "wheels", *_FIELDS))
    values: dict[str, frozenset[str]] = {}
    for field_name, vocab_name in _FIELDS.items():
        merged = frozenset(defaults.get(field_name, [])) | frozenset(entry.get(field_name, []))
        bad = merged - vocab[vocab_name]
        if bad:
            raise KnowledgeBaseError(f"{where}: {field_name} {sorted(bad)} not in the {vocab_name} list")
        values[field_name] = merged
    if entry["size"] not in SIZES:
        raise KnowledgeBaseError(f"{where}: size must be one of {', '.join(SIZES)}")
    variants = tuple(entry.get("variants", ()))
    article = entry.get("article", "an" if normalize(name)[:1] in tuple("aeiou") else "a")
    if article not in ("a", "an", "the", ""):
        raise KnowledgeBaseError(f"{where}: article must be a, an, the or empty")
    if values["worn_on"] and "worn" not in values["traits"]:
        raise KnowledgeBaseError(f"{where}: worn_on given but the object is not worn")
    return KBObject(
        name=name,
        category=category,
        index=index,
        variants=variants,
        article=article,
        size=SIZES.index(entry["size"]),
        legs=entry.get("legs", 0),
        wheels=entry.get("wheels", 0),
        forms=frozenset().union(*(name_forms(n) for n in (name, *variants))),
        **values,
    )


KB = load_knowledge_base()
OBJECTS: tuple[KBObject, ...] = KB.objects
CATEGORIES: tuple[str, ...] = tuple(KB.categories)
_NAME_INDEX: dict[str, KBObject] = {form: obj for obj in OBJECTS for form in obj.forms}


def find_object(name: str) -> KBObject | None:
    """The KB object a name (or variant, any case or plural) refers to."""
    return _NAME_INDEX.get(compact(normalize(name)))


# --- correct-guess detection (the rule judge) ----------------------------------------------------
_SUBJECT = (
    r"(?:it|this|that|they|these|those|"
    r"(?:the|your|my)\s+(?:(?:secret|hidden|mystery|mysterious|chosen)\s+)?(?:object|thing|item|word|answer))"
)
_GUESS = re.compile(
    r"^(?:(?:so|ok|okay|alright|well|hmm|hm|then|and|now|next|great|good|right)\s+)*"
    r"(?:(?:(?:my|the|one|last|final)\s+)*guess(?:\s+is)?\s+|i\s+guess\s+|i\s+think\s+|i\s+believe\s+"
    r"|let\s+me\s+guess\s+|lets\s+guess\s+)?"
    r"(?:(?:is|could|can|might|may|would|will|must)\s+" + _SUBJECT + r"(?:\s+be)?\s+"
    r"|are\s+(?:they|these|those|you\s+thinking\s+(?:of|about))\s+"
    r"|" + _SUBJECT + r"\s+(?:is|s|must\s+be|might\s+be|could\s+be|would\s+be|may\s+be)\s+"
    r"|its\s+|is\s+it\s+called\s+|the\s+answer\s+is\s+)?"
    r"(?:(?:perhaps|maybe|possibly|probably|actually|really|just|definitely|simply)\s+)*"
    r"(?P<article>(?:a|an|the|some|one)\s+)?"
    r"(?P<counter>(?:kind|type|sort|pair|piece|set|form|variety|model)\s+of\s+(?:(?:a|an|the)\s+)?)?"
    r"(?P<phrase>.+?)"
    r"(?:\s+(?:perhaps|maybe|then|by\s+any\s+chance|right|or\s+not|itself|exactly|again))*$"
)


@lru_cache(maxsize=16384)
def guess_phrase(question: str) -> tuple[str, bool] | None:
    """What a question asks "is it ...?" about, framing words removed, and whether an article or a
    counter ("a", "a pair of") introduced it; ``None`` for an empty question."""
    found = _GUESS.match(normalize(question))
    if found is None:
        return None
    return found.group("phrase"), bool(found.group("article") or found.group("counter"))


def is_correct_guess(question: str, obj: KBObject) -> bool:
    """Whether ``question`` names ``obj`` (or a variant) as the thing asked about (module docstring)."""
    found = guess_phrase(question)
    return found is not None and compact(found[0]) in obj.forms


# Names that double as a color or material word: without an article they are read as that word
# ("Is it orange?" asks about the color; "Is it an orange?" guesses the fruit).
_ATTRIBUTE_WORDS = frozenset(
    {"orange", "stone", "rock", "gold", "silver", "glass", "paper", "metal", "wood", "plastic", "rubber"}
)


def guess_target(question: str) -> KBObject | None:
    """The KB object a question names as its guess, if any (for the oracle and the turn info)."""
    found = guess_phrase(question)
    if found is None:
        return None
    phrase, introduced = found
    if not introduced and phrase in _ATTRIBUTE_WORDS:
        return None
    return _NAME_INDEX.get(compact(phrase))


# --- the question interpreter's vocabulary -------------------------------------------------------
_VOCABULARY_SCHEMA: dict[str, Any] = {
    "about": str,
    "trait_patterns": dict[str, str],
    "places": dict[str, list[str]],
    "home_places": list[str],
    "indoor_places": list[str],
    "outdoor_places": list[str],
    "materials": dict[str, list[str]],
    "bare_materials": list[str],
    "colors": dict[str, list[str]],
    "body_parts": dict[str, list[str]],
    "body_accepts": dict[str, list[str]],
    "uses": dict[str, list[str]],
    "extra_uses": dict[str, list[str]],
    "undecidable": list[str],
    "function_words": list[str],
}


def load_vocabulary(path: Path | str = VOCABULARY_PATH) -> dict[str, Any]:
    """The kb-oracle's question vocabulary (see the file's ``about``), checked: every field of its type,
    every pattern a valid regular expression."""
    data = check_entry(load_json(path), _VOCABULARY_SCHEMA, f"{path}", optional=("about",))
    patterns = {f"trait_patterns {k!r}": v for k, v in data["trait_patterns"].items()}
    patterns.update({f"undecidable {v!r}": v for v in data["undecidable"]})
    for where, pattern in patterns.items():
        try:
            re.compile(pattern)
        except re.error as error:
            raise KnowledgeBaseError(f"{path}: {where}: not a valid pattern ({error})") from None
    return data


# --- sizes and weights ---------------------------------------------------------------------------
class Measure(NamedTuple):
    cm: float  # typical largest dimension
    kg: float  # typical weight


_SIZES_SCHEMA: dict[str, Any] = {
    "about": str,
    "margin": float,
    "objects": dict[str, list[float]],
    "references": dict[str, list[float]],
}


def load_sizes(path: Path | str = SIZES_PATH) -> tuple[dict[str, Measure], float]:
    """Compact name form -> measure, for every KB object (all its names) and every reference thing, and
    the margin within which two sizes count as about the same."""
    data = check_entry(load_json(path), _SIZES_SCHEMA, f"{path}", optional=("about",))
    for group in ("references", "objects"):
        for name, value in data[group].items():
            if len(value) != 2 or min(value) < 0:
                raise KnowledgeBaseError(f"{path}: {group} {name!r} must be [cm, kg], not {value}")
    measures: dict[str, Measure] = {}
    for name, (cm, kg) in data["references"].items():
        for form in name_forms(name):
            measures[form] = Measure(float(cm), float(kg))
    missing = [o.name for o in OBJECTS if o.name not in data["objects"]]
    if missing:
        raise KnowledgeBaseError(f"{path}: no size for {', '.join(missing)}")
    for obj in OBJECTS:  # objects win over references of the same name
        cm, kg = data["objects"][obj.name]
        for form in obj.forms:
            measures[form] = Measure(float(cm), float(kg))
    return measures, float(data["margin"])


def load_question_bank(path: Path | str = QUESTION_BANK_PATH) -> tuple[str, ...]:
    """The generic yes/no questions the scripted questioners choose from."""
    data = check_entry(
        load_json(path), {"about": str, "questions": list[str]}, f"{path}", optional=("about",)
    )
    for question in data["questions"]:
        if not question.strip().endswith("?"):
            raise KnowledgeBaseError(f"{path}: question {question!r} does not end with '?'")
    return tuple(data["questions"])
