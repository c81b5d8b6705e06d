"""Twenty Questions (LMRL-Gym §5.1): find the everyday object the oracle thinks of with yes/no questions.

**Objects.** 158 everyday objects in the paper's 17 categories (Sports 10, Animals 10, Fruits 10,
Vehicles 10, Clothes 11, Electronics 10, Musical Instruments 10, Furniture 10, Office Supplies 14,
Vegetables 10, Art 7, Kitchen Tools 10, Nature 11, Toys 5, Jewelry 9, Garden Supplies 5, Tools 6),
our own list, in ``data/twenty_questions_objects.json``: a knowledge base (KB) giving every object
its accepted variants ("TV" for "Television") and attributes (category, size, materials, where it is
found, uses, colors, counts of legs and wheels, body parts it is worn on, and boolean traits such as
alive, edible, man-made, electric, worn). The file is validated when this module loads.

**Secret.** Option ``secret``: ``"index"`` (default) plays ``OBJECTS[index % 158]``, in file order
(categories in the paper's order, objects as listed), so ``--episodes 158`` sweeps every object once
(the paper's "deterministic mode"); ``"random"`` draws it with the episode's RNG; an object's name
(or variant) fixes it for every episode.

**Rules.**

* Each agent action is one yes/no question (``parse``: the text after the last ``Question:``
  marker, else the first line ending in "?", else a one-line reply as it is; only the last sentence
  of that line is kept). The oracle answers exactly ``Yes.`` or ``No.`` (the observation).
* Reward -1 per question; 0 for the question that names the secret object (or a variant) and is
  answered ``Yes.``: the episode ends with success. After 20 questions it ends anyway, so returns
  lie in [-20, 0]. An empty or unparsable output is invalid: it still costs -1 and uses up a
  question, is answered ``No.`` without consulting the oracle (as the paper's "invalid question"
  sentinel was), and leaves the range unchanged.
* **Correct guess** (``is_correct_guess``, a rule judge needing no NLP data): after case, articles,
  punctuation and a guess frame ("Is it", "Is the object", "Could it be", "My guess is", "Are you
  thinking of", ...) and counters ("a pair of", "a kind of") are removed, what remains must be the
  object's name or a variant, up to a simple plural and spacing ("Is it a basketball?", "Is the
  object a TV?", "basketball?", "Is it a pair of shoes?"). Near-misses are rejected: a more general
  or a longer noun phrase ("Is it a ball?", "Is it a basketball court?") or the name inside another
  predicate ("Is it used in basketball?", "Is it bigger than a basketball?"). As in the paper,
  success needs the rule judge's match **and** a ``Yes.`` from the oracle: a model oracle that says
  ``No.`` to a correct guess denies the success (the built-in oracle always says ``Yes.`` to it).

**Oracle** (role ``oracle``, default ``scripted/kb-oracle``):

* ``kb-oracle`` maps the question to KB attributes with keyword patterns (categories and synonyms,
  living/edible/man-made/electric/..., sizes and "bigger than a breadbox/person/<any object>",
  materials, places, uses, colors, body parts, legs and wheels, object names; "and" joins, "or"
  splits, "not"/"can't" negates the next attribute) and answers from the facts. A question it
  cannot map gets ``No.`` (as the paper's oracle did) and is flagged: turn info ``oracle_mapped:
  False``; mapped turns carry ``oracle_mapped: True`` and ``attribute`` (what was checked). Every
  turn's info has ``answer``, ``question``, ``guess`` (the KB object the question names, if any) and
  ``correct_guess``; ``episode_info`` counts the unmapped questions (oracle coverage).
* A model in the role gets ``oracle_messages``: a system prompt naming the object and demanding
  exactly "Yes." or "No.", and the question. Its reply is read by ``parse_oracle_reply`` (yes/no at
  the start, "Yes, it is", "Nope", "Definitely not", ...); anything else counts as ``No.`` and is
  flagged ``oracle_parse_failed``. Turn info then also has the raw reply and ``kb_answer`` (what the
  KB would have said, ``None`` when unmapped) for faithfulness reports.
* ``step`` (sync) always uses the KB oracle and refuses when a model oracle is attached; the runner
  calls ``astep``, which asks whoever fills the role.

**Renderings.** ``chat``: a system prompt with the rules, the categories and the answer format, the
intro, then questions and answers as turns. ``text`` (the paper's format): ``Questions:``, then one
question and one answer per line (the intro is left out). When the questions run out, the final
observation also names the object (never shown to the agent; it lets judges read the transcript).

**Scripted policies.** ``random`` (generic questions from ``QUESTION_BANK`` mixed with random
guesses), ``behavior`` (the dataset-generating questioner: keeps the objects consistent with the
answers, asks the best-splitting bank question with probability ``BEHAVIOR_SMART_P`` and otherwise a
random one, and guesses a random remaining candidate when few remain; tuned against the kb-oracle to
the paper's dataset success rate 0.31), ``optimal`` (always the best split, guessing when at most 2
candidates remain; an upper reference) and ``kb-oracle`` (the oracle role's policy).
``measure_policy`` reproduces the tuning numbers; against the kb-oracle, 158 x 2 episodes, seeds 0-9:

=========  =======  ===========  ===========
policy     success  mean return  mean length
=========  =======  ===========  ===========
behavior   0.30     -17.9        18.2
optimal    1.00     -7.0         8.0
random     0.03     -19.7        19.7
=========  =======  ===========  ===========

The paper's dataset reports success 0.31, mean return -17.3 and mean length 14.9; under a 20-question
cap these cannot all hold (failures alone contribute 0.69 x 20 = 13.8 to the mean length, and a mean
return of -17.3 implies successes after ~12 questions, i.e. a mean length near 17.6), so the behavior
policy matches the success rate. ``optimal`` beats the paper's max anchor (-12.6) by far because the
kb-oracle never errs.
"""

from __future__ import annotations

import json
import random
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from harness.task import Anchors, InvalidTaskOption, Policy, Segment, StepResult, Style, Task
from harness.tasks import register_task

DATA_PATH = Path(__file__).parent / "data" / "twenty_questions_objects.json"
MAX_QUESTIONS = 20
YES, NO = "Yes.", "No."
KB_ORACLE = "kb-oracle"
INTRO = (
    "I am thinking of an everyday object. Ask yes/no questions to find out what it is; I answer each "
    f'with "Yes." or "No.". You have {MAX_QUESTIONS} questions.'
)
# The paper's categories and their sizes (§5.1); the knowledge base must match them.
PAPER_CATEGORY_COUNTS: dict[str, int] = {
    "Sports": 10,
    "Animals": 10,
    "Fruits": 10,
    "Vehicles": 10,
    "Clothes": 11,
    "Electronics": 10,
    "Musical Instruments": 10,
    "Furniture": 10,
    "Office Supplies": 14,
    "Vegetables": 10,
    "Art": 7,
    "Kitchen Tools": 10,
    "Nature": 11,
    "Toys": 5,
    "Jewelry": 9,
    "Garden Supplies": 5,
    "Tools": 6,
}
SIZES: tuple[str, ...] = ("tiny", "small", "medium", "large", "huge", "enormous")


# --- text normalization --------------------------------------------------------------------------
_APOSTROPHE = re.compile(r"['’‘`´]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    """Lower case, apostrophes dropped ("rubik's" -> "rubiks"), everything else that is not a letter or
    digit turned into single spaces ("T.V.?" -> "t v", "yo-yo" -> "yo yo")."""
    text = _APOSTROPHE.sub("", text.lower()).replace("&", " and ")
    return _NON_ALNUM.sub(" ", text).strip()


def _compact(text: str) -> str:
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
class KnowledgeBaseError(ValueError):
    """The knowledge-base file is malformed; the message says where."""


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


def load_knowledge_base(path: Path | str = DATA_PATH) -> KnowledgeBase:
    """Read and validate the knowledge-base JSON (see its ``about`` field for the layout)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise KnowledgeBaseError(f"{path}: {error}") from None
    vocab = {
        "sizes": frozenset(data.get("sizes", {})),
        "materials": frozenset(data.get("materials", {})),
        "places": frozenset(data.get("places", {})),
        "uses": frozenset(data.get("uses", [])),
        "colors": frozenset(data.get("colors", [])),
        "body_parts": frozenset(data.get("body_parts", [])),
        "traits": frozenset(data.get("traits", {})),
    }
    if tuple(data.get("sizes", {})) != SIZES:
        raise KnowledgeBaseError(f"{path}: sizes must be {', '.join(SIZES)} in this order")
    fields = {
        "materials": "materials",
        "found": "places",
        "uses": "uses",
        "colors": "colors",
        "traits": "traits",
        "worn_on": "body_parts",
    }
    objects: list[KBObject] = []
    categories: dict[str, tuple[str, ...]] = {}
    counts: dict[str, int] = {}
    for category in data.get("categories", []):
        cname = category["name"]
        if cname in categories:
            raise KnowledgeBaseError(f"{path}: category {cname!r} listed twice")
        categories[cname] = tuple(category.get("synonyms", ()))
        counts[cname] = int(category["count"])
        defaults = category.get("defaults", {})
        if len(category.get("objects", [])) != counts[cname]:
            raise KnowledgeBaseError(
                f"{path}: category {cname!r} declares {counts[cname]} objects but lists "
                f"{len(category.get('objects', []))}"
            )
        for entry in category["objects"]:
            name = entry.get("name", "")
            where = f"{path}: object {name!r} ({cname})"
            unknown = set(entry) - {"name", "variants", "article", "size", "legs", "wheels", *fields}
            if not name or unknown:
                raise KnowledgeBaseError(f"{where}: missing name or unknown field(s) {sorted(unknown)}")
            values: dict[str, frozenset[str]] = {}
            for field_name, vocab_name in fields.items():
                merged = frozenset(defaults.get(field_name, [])) | frozenset(entry.get(field_name, []))
                bad = merged - vocab[vocab_name]
                if bad:
                    raise KnowledgeBaseError(
                        f"{where}: {field_name} {sorted(bad)} not in the {vocab_name} list"
                    )
                values[field_name] = merged
            if entry.get("size") not in SIZES:
                raise KnowledgeBaseError(f"{where}: size must be one of {', '.join(SIZES)}")
            variants = tuple(entry.get("variants", ()))
            default_article = "an" if normalize(name)[:1] in tuple("aeiou") else "a"
            article = entry.get("article", default_article)
            if article not in ("a", "an", "the", ""):
                raise KnowledgeBaseError(f"{where}: article must be a, an, the or empty")
            if values["worn_on"] and "worn" not in values["traits"]:
                raise KnowledgeBaseError(f"{where}: worn_on given but the object is not worn")
            forms = frozenset().union(*(name_forms(n) for n in (name, *variants)))
            objects.append(
                KBObject(
                    name=name,
                    category=cname,
                    index=len(objects),
                    variants=variants,
                    article=article,
                    size=SIZES.index(entry["size"]),
                    legs=int(entry.get("legs", 0)),
                    wheels=int(entry.get("wheels", 0)),
                    forms=forms,
                    **values,
                )
            )
    owner: dict[str, str] = {}
    for obj in objects:
        for form in obj.forms:
            if owner.setdefault(form, obj.name) != obj.name:
                raise KnowledgeBaseError(f"{path}: {form!r} names both {owner[form]!r} and {obj.name!r}")
    if len(objects) != sum(counts.values()):  # pragma: no cover - guarded per category above
        raise KnowledgeBaseError(f"{path}: object count mismatch")
    return KnowledgeBase(tuple(objects), categories, counts, vocab)


KB = load_knowledge_base()
OBJECTS: tuple[KBObject, ...] = KB.objects
CATEGORIES: tuple[str, ...] = tuple(KB.categories)
_NAME_INDEX: dict[str, KBObject] = {form: obj for obj in OBJECTS for form in obj.forms}


def find_object(name: str) -> KBObject | None:
    """The KB object a name (or variant, any case or plural) refers to."""
    return _NAME_INDEX.get(_compact(normalize(name)))


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
    return found is not None and _compact(found[0]) in obj.forms


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
    return _NAME_INDEX.get(_compact(phrase))


# --- the knowledge-base oracle: questions -> attribute predicates ----------------------------------
Predicate = Callable[[KBObject], bool]


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
    return lambda o: not predicate(o)


# Each trait's question phrases (regex fragments over normalized text).
TRAIT_PATTERNS: dict[str, str] = {
    "alive": r"alive|living(?!\s+room)(?:\s+(?:thing|creature|organism|being))?|live\s+thing|organism|"
    r"life\s+form|breathes?|breathing",
    "plant": r"plants?|part\s+of\s+a\s+plant|(?:comes?\s+)?from\s+a\s+plant|vegetation",
    "mammal": r"mammals?",
    "bird": r"birds?|feathers?|feathered",
    "reptile": r"reptiles?|scales|scaly|cold\s+blooded",
    "insect": r"insects?|bugs?",
    "pet": r"pets?|domestic(?:ated)?(?:\s+animals?)?|house\s+animal|companion\s+animal",
    "farm animal": r"farm\s+animals?|livestock",
    "wild": r"wild(?:\s+animals?)?|wildlife",
    "carnivore": r"carnivor\w*|eats?\s+meat|meat\s+eat\w*|predators?|hunts?|hunting",
    "milk": r"(?:gives?|produces?|makes?)\s+milk|milk",
    "dangerous": r"dangerous|deadly|harmful|(?:can\s+)?hurt\s+(?:you|people|someone|a\s+person)|"
    r"kill\s+(?:you|people)|poisonous|venomous",
    "fur": r"fur|furry|hair|hairy",
    "tail": r"tails?",
    "wings": r"wings?",
    "flies": r"fly|flies|flying|airborne|soars?",
    "swims": r"swim|swims|swimming",
    "moves": r"moves?(?:\s+(?:by\s+itself|on\s+its\s+own))?|moving",
    "edible": r"edible|eat\s+(?:it|them)|eaten|eat|food|foods|consum(?:e|ed|able)|tasty|taste|snack",
    "sweet": r"sweet",
    "sour": r"sour|tart|acidic",
    "juicy": r"juicy|juice",
    "eaten raw": r"(?:eaten|eat\s+(?:it|them))\s+raw|raw",
    "cooked": r"(?:need|needs|have|has)\s+to\s+be\s+cooked|cooked|cook\s+(?:it|them)|boiled|baked|fried|"
    r"roasted",
    "peeled": r"peel(?:ed|ing|s)?|rind|remove\s+the\s+skin",
    "seeds": r"seeds?|pits?|pips?|core",
    "citrus": r"citrus",
    "tropical": r"tropical|tropics",
    "berry": r"berry|berries",
    "grows on trees": r"grows?\s+on\s+(?:a\s+)?trees?|from\s+(?:a\s+)?trees?|on\s+a\s+tree",
    "grows underground": r"(?:grows?\s+)?underground|(?:grows?\s+)?(?:in|under|below)\s+(?:the\s+)?"
    r"(?:ground|soil|earth)|root(?:\s+vegetable)?s?|tubers?",
    "vine": r"vines?",
    "leaves": r"leaf|leaves|leafy",
    "man-made": r"man\s+made|manmade|human\s+made|made\s+by\s+(?:humans|people|man|a\s+person|someone)|"
    r"artificial|manufactured|factory\s+made|synthetic|invented|machine\s+made",
    "electric": r"electric(?:al|ity)?|electrically|powered\s+by\s+electricity|needs?\s+power|uses?\s+power|"
    r"energy|charg(?:e|ed|er|ing)|turn\s+(?:it\s+)?on|switch(?:ed)?\s+on|on\s+and\s+off|runs?\s+on\s+(?:power|electricity)",
    "electronic": r"electronic(?:\s+(?:device|gadget|item|appliance|equipment|thing|object|machine))?|"
    r"circuits?|circuitry|(?:computer\s+|micro)chips?|digital|technolog(?:y|ical)|tech",
    "battery": r"batter(?:y|ies)|battery\s+powered|cordless|rechargeable|wireless",
    "plugs in": r"plug(?:ged|s)?(?:\s+(?:it|them))?\s+in(?:to)?|plug|outlet|socket|power\s+cord|cords?|"
    r"cables?|wires?|wired|mains",
    "screen": r"screens?|display|monitor|touchscreen|touch\s+screen",
    "buttons": r"buttons?",
    "keys": r"keys?|keyboard|keypad",
    "internet": r"internet|wifi|wi\s+fi|online|web|apps?|bluetooth|smart",
    "camera": r"cameras?|take\s+(?:pictures|photos|photographs|selfies|videos)",
    "tells time": r"tells?\s+(?:the\s+)?time|time|clock|hours|keeps?\s+time|alarm",
    "numbers": r"numbers?|digits|numerals|numbered",
    "makes sound": r"sounds?|noise|noises|beeps?|barks?|meows?|roars?|sings?|make\s+a\s+sound|audible",
    "music": r"music|musical|songs?|melod(?:y|ies)|tunes?",
    "loud": r"loud|noisy",
    "light": r"lights?\s+up|(?:give|gives|emit|emits|produce|produces|make|makes|provide|provides)\s+"
    r"(?:off\s+)?light|glow(?:s|ing)?|shine(?:s)?|shining|bright|illuminat\w*|(?:a\s+)?(?:light\s+source|"
    r"source\s+of\s+light)",
    "hot": r"hot|heat|heats|warm\s+up|burns?|burning|fire|flames?",
    "engine": r"engines?|gasoline|gas\s+powered|petrol|fuel|diesel",
    "motor": r"motors?|motori[sz]ed",
    "pedals": r"pedals?",
    "ride": r"ride(?:\s+(?:on|in))?(?:\s+(?:it|them))?|riding|rideable|ridden",
    "drive": r"drive(?:\s+(?:it|them))?|driven|driving|steer(?:ed|ing)?|driver|pilot(?:ed)?",
    "passengers": r"passengers?|carr(?:y|ies)\s+people|transport(?:s)?\s+people|seats",
    "public transport": r"public\s+transport(?:ation)?|mass\s+transit|public\s+transit|tickets?",
    "cargo": r"cargo|freight|goods|haul(?:s|ing)?",
    "rails": r"rails?|tracks?|railway|railroad",
    "floats": r"floats?|floating|sail(?:s|ing)?",
    "doors": r"doors?",
    "worn": r"wear(?:\s+(?:it|them))?|wears|worn|wearing|wearable|put\s+(?:it|them)\s+on",
    "accessory": r"accessor(?:y|ies)",
    "pair": r"pairs?|come\s+in\s+twos|sets?\s+of\s+two",
    "warm": r"keeps?\s+(?:you|people|someone|your\s+\w+)\s+warm|keep\s+warm|warmth|winter|cold\s+weather|"
    r"when\s+(?:it\s+is|its)\s+cold|in\s+the\s+cold",
    "formal": r"formal|fancy|elegant|special\s+occasions?|weddings?|dress\s+up",
    "ball": r"balls?",
    "bounces": r"bounc\w*",
    "thrown": r"throw(?:n|s)?|throwing|toss(?:ed)?|catch",
    "kicked": r"kick(?:ed|s|ing)?",
    "hits": r"hit\s+(?:a\s+|the\s+)?balls?|hit\s+things|hit\s+something|swing(?:\s+(?:it|them))?|swung",
    "team sport": r"team(?:\s+(?:sports?|games?))?|teams",
    "round": r"round|circular|circle|spherical|sphere|ball\s+shaped|disc|disk",
    "oval": r"oval|egg\s+shaped",
    "long": r"long|thin|stick|stick\s+shaped|elongated|skinny|narrow",
    "flat": r"flat|surface",
    "rectangular": r"rectangular|rectangle|square|box\s+shaped|boxy",
    "cylindrical": r"cylind\w*|tubes?|tubular",
    "cube": r"cube|cubic|cube\s+shaped|six\s+sides",
    "tall": r"tall|towering",
    "sharp": r"sharp|pointy|pointed",
    "blade": r"blades?",
    "spiky": r"spiky|spikes|spines|prickly|thorns?|thorny",
    "soft": r"soft|squishy|fluffy|cuddly|plush|padded|cushion\w*|comfortable|comfy|fuzzy",
    "heavy": r"heavy|weighs?\s+a\s+lot",
    "fragile": r"fragile|breakable|delicate|breaks?\s+easily|brittle",
    "expensive": r"expensive|costly|pricey|valuable|costs?\s+(?:a\s+lot|much)|luxury|luxurious|precious",
    "handle": r"handles?|handlebars?|grip",
    "strings": r"strings?|stringed|string\s+instrument",
    "plucked": r"pluck(?:ed|ing)?|strum(?:med|ming)?",
    "bowed": r"bow|bowed|played\s+with\s+a\s+bow",
    "blown": r"blow(?:\s+into(?:\s+(?:it|them))?)?|blown|blowing|wind\s+instrument|woodwind|breath|mouth",
    "brass": r"brass\s+instruments?|brass",
    "percussion": r"percussion(?:\s+instruments?)?|hit\s+(?:it|them)|beat\s+(?:it|them)|strike\s+(?:it|them)|"
    r"bang(?:ed)?|drumsticks?|drum",
    "orchestra": r"orchestras?|orchestral|symphony|classical(?:\s+music)?",
    "sit": r"sit(?:\s+(?:on|in))?(?:\s+(?:it|them))?|sitting|seating|seat|sat\s+on",
    "sleep": r"sleep(?:\s+(?:on|in))?(?:\s+(?:it|them))?|sleeping|lie\s+(?:on|down)|lay\s+on|nap",
    "storage": r"stor(?:e|es|ing|age)(?:\s+(?:things|stuff|items))?|keeps?\s+things|put\s+things\s+in|"
    r"holds?\s+things|organi[sz]\w*",
    "drawers": r"drawers?",
    "shelves": r"shel(?:f|ves)",
    "container": r"container|holds?\s+(?:liquid|water|food|things\s+inside)|put\s+things\s+inside|"
    r"contains?\s+(?:things|something)|hollow|lid",
    "writes": r"writ(?:e|es|ing)\s+with|draw\s+with|make\s+marks|leaves?\s+marks|"
    r"writing\s+(?:tool|instrument|utensil|implement)",
    "ink": r"ink|inky|marker",
    "sticky": r"sticky|adhesive|sticks?\s+to|glue|gluey",
    "measures": r"measur\w*|length|distance",
    "cuts": r"cut(?:s|ting)?\s+things|cut\s+(?:paper|food|wood|grass)|cutting\s+tool|can\s+cut|cuts|"
    r"slices?|chops?",
    "tool": r"tools?",
    "children": r"child|children|kids?|toddlers?|babies|baby",
    "stuffed": r"stuffed(?:\s+(?:animal|toy))?|plush(?:\s+toy)?|soft\s+toy|cuddly\s+toy",
    "puzzle": r"puzzles?|solve\s+it|brain\s+teaser",
    "colorful": r"colou?rful|many\s+colou?rs|multi\s*colou?red|lots\s+of\s+colou?rs|bright\s+colou?rs|"
    r"rainbow\s+colou?red|different\s+colou?rs",
    "decorative": r"decorat\w*|ornament\w*|pretty|beautiful|looks?\s+nice|for\s+show",
    "wall": r"walls?|hang(?:s|ed|ing)?\s+(?:up|on)",
    "water body": r"bod(?:y|ies)\s+of\s+water|water\s+body|waterway",
    "landform": r"landforms?|land\s+form|geographic(?:al)?\s+feature|land\s+feature|landscape|terrain|hill",
    "weather": r"weather|meteorolog\w*|rain|raining|storm|after\s+it\s+rains",
    "climb": r"climb(?:ed|ing)?|hike|hiking",
    "cannot touch": r"intangible|untouchable",
}

# The vocabulary tables below are data: kept compact by hand.
# fmt: off
PLACE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "home": ("home", "homes", "house", "houses", "household", "households", "apartment", "flat"),
    "kitchen": ("kitchen",),
    "bedroom": ("bedroom",),
    "living room": ("living room", "lounge", "den"),
    "bathroom": ("bathroom", "toilet", "shower"),
    "closet": ("closet", "wardrobe", "drawer", "cupboard"),
    "garage": ("garage", "shed", "workshop", "toolbox", "tool box", "hardware store"),
    "office": ("office", "offices", "workplace", "work"),
    "desk": ("desk", "desks"),
    "school": ("school", "schools", "classroom", "class"),
    "museum": ("museum", "gallery", "art gallery"),
    "studio": ("studio", "art studio", "art class"),
    "store": ("store", "shop", "supermarket", "grocery store", "grocery", "market"),
    "gym": ("gym",),
    "sports field": ("field", "court", "pitch", "stadium", "sports field", "golf course", "course", "rink",
                     "arena"),
    "stage": ("stage", "concert", "band"),
    "outdoors": ("outdoors", "open air"),
    "garden": ("garden", "gardens", "yard", "backyard", "lawn"),
    "park": ("park", "parks", "playground"),
    "farm": ("farm", "farms", "barn", "countryside"),
    "water": ("water", "ocean", "oceans", "sea", "seas", "river", "rivers", "lake", "lakes", "pond"),
    "beach": ("beach", "coast", "seaside"),
    "sky": ("sky", "air", "space"),
    "wild": ("wild", "wilderness", "jungle", "savanna", "savannah", "africa"),
    "zoo": ("zoo", "zoos"),
    "forest": ("forest", "forests", "woods"),
    "mountains": ("mountains", "mountain"),
    "desert": ("desert",),
    "road": ("road", "roads", "street", "streets", "highway"),
    "city": ("city", "cities", "town", "towns"),
    "airport": ("airport",),
    "railway": ("railway", "train station", "station"),
}
HOME_PLACES = frozenset({"home", "kitchen", "bedroom", "living room", "bathroom", "closet", "garage"})
INDOOR_PLACES = HOME_PLACES | {"office", "desk", "school", "museum", "studio", "store", "gym", "stage"}
OUTDOOR_PLACES = frozenset(
    {"outdoors", "garden", "park", "farm", "water", "beach", "sky", "wild", "forest", "mountains", "desert",
     "road", "sports field", "railway", "airport", "city", "zoo"}
)

MATERIAL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "wood": ("wood", "wooden", "timber"),
    "metal": ("metal", "metallic", "steel", "iron", "aluminum", "aluminium", "brass", "copper", "tin"),
    "plastic": ("plastic", "fiberglass", "fibreglass"),
    "fabric": ("fabric", "cloth", "cotton", "wool", "woolen", "woollen", "textile", "textiles", "silk",
               "polyester", "denim", "canvas"),
    "glass": ("glass",),
    "ceramic": ("ceramic", "porcelain", "clay", "pottery"),
    "rubber": ("rubber",),
    "leather": ("leather",),
    "paper": ("paper", "cardboard"),
    "stone": ("stone", "rock", "rocks", "marble", "concrete"),
    "organic": ("flesh", "meat", "organic material", "plant material", "cells"),
    "gold": ("gold", "golden"),
    "silver": ("silver",),
    "gem": ("gem", "gems", "gemstone", "gemstones", "diamond", "diamonds", "jewels", "precious stones",
            "crystals"),
    "wax": ("wax",),
    "water": ("water", "liquid"),
    "light": ("light",),
    "gas": ("gas", "gases", "plasma"),
}
_BARE_MATERIALS = (
    "wood", "wooden", "metal", "metallic", "steel", "iron", "plastic", "fabric", "cloth", "cotton", "woolen",
    "glass", "ceramic", "porcelain", "rubber", "leather", "paper", "cardboard", "stone", "golden", "gold",
    "silver", "liquid",
)

COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange",),
    "yellow": ("yellow",),
    "green": ("green",),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "pink": ("pink",),
    "brown": ("brown", "tan", "beige"),
    "black": ("black",),
    "white": ("white",),
    "gray": ("gray", "grey"),
    "clear": ("clear", "transparent", "see through"),
}

BODY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "head": ("head", "hair"),
    "ears": ("ear", "ears"),
    "neck": ("neck", "throat"),
    "chest": ("chest",),
    "upper body": ("upper body", "torso", "top half", "shoulders", "arms"),
    "body": ("body", "whole body"),
    "waist": ("waist", "hips"),
    "legs": ("leg", "legs", "lower body", "bottom half"),
    "hands": ("hand", "hands"),
    "finger": ("finger", "fingers"),
    "wrist": ("wrist", "wrists"),
    "ankle": ("ankle", "ankles"),
    "feet": ("foot", "feet", "toes"),
}
# A question about one body part also accepts things worn on these parts.
_BODY_ACCEPTS: dict[str, frozenset[str]] = {
    "body": frozenset({"body", "upper body", "legs", "waist", "chest"}),
    "upper body": frozenset({"upper body", "body", "chest"}),
    "hands": frozenset({"hands", "finger"}),
}

USE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sport": ("sport", "sports", "exercise", "exercising", "athletics", "fitness", "working out"),
    "play": ("play", "playing", "games", "game", "recreation", "leisure", "playtime"),
    "basketball": ("basketball",),
    "soccer": ("soccer",),
    "football": ("football", "american football"),
    "baseball": ("baseball",),
    "tennis": ("tennis",),
    "golf": ("golf",),
    "hockey": ("hockey", "ice hockey"),
    "skateboarding": ("skateboarding", "skating"),
    "boxing": ("boxing", "fighting"),
    "surfing": ("surfing",),
    "transport": ("transport", "transportation", "travel", "traveling", "travelling", "getting around",
                  "commuting", "moving people", "carrying people", "transporting people", "going places"),
    "carrying": ("carrying things", "carrying goods", "moving things", "hauling", "carrying stuff",
                 "delivering", "carrying"),
    "farming": ("farming", "farm work", "agriculture", "plowing", "ploughing"),
    "cooking": ("cooking", "cook", "cook food", "making food", "preparing food", "food preparation", "frying",
                "boiling", "heating food"),
    "baking": ("baking", "bake", "making bread", "dough"),
    "eating": ("eating", "eat", "eat food", "eating food", "meals", "dinner"),
    "mixing": ("mixing", "mix", "stirring", "stir", "whisking", "blending", "beating eggs", "mixing colors",
               "mixing paint", "mixing paints"),
    "serving": ("serving", "serve", "serving food", "scooping", "scoop", "flipping", "flip"),
    "cutting": ("cutting", "cut", "cut things", "cutting things", "slicing", "slice", "chopping", "chop",
                "cut food", "cut paper", "cutting paper", "cutting food"),
    "toasting": ("toasting", "toast", "making toast", "toast bread", "bread"),
    "writing": ("writing", "write", "taking notes", "notes", "writing notes", "note taking"),
    "drawing": ("drawing", "draw", "sketching", "sketch"),
    "painting": ("painting", "paint", "paintings", "making art"),
    "coloring": ("coloring", "colouring", "color", "colour", "coloring in", "highlighting", "highlight",
                 "marking"),
    "erasing": ("erasing", "erase", "rubbing out", "removing mistakes", "fixing mistakes",
                "correcting mistakes"),
    "measuring": ("measuring", "measure", "measurements", "measuring things", "measuring length"),
    "fastening": ("fastening", "fasten", "attaching", "attach", "attaching things", "sticking things",
                  "stick things", "holding paper", "holding papers", "holding things together",
                  "hold things together", "hold paper", "joining", "binding", "stapling", "gluing",
                  "sticking"),
    "calculating": ("calculating", "calculate", "calculations", "math", "maths", "arithmetic", "doing math",
                    "doing sums", "counting"),
    "mailing": ("mailing", "mail", "sending letters", "letters", "posting letters", "sending mail",
                "send letters", "send mail", "post letters", "send a letter"),
    "reading": ("reading", "read", "books"),
    "working": ("working", "work", "office work", "business", "studying", "study", "homework"),
    "computing": ("computing", "computers", "computer", "typing", "programming", "browsing",
                  "using a computer"),
    "communication": ("communication", "communicating", "calling", "calls", "phone calls", "making calls",
                      "talking to people", "texting", "messaging", "talking"),
    "photography": ("photography", "taking pictures", "taking photos", "photos", "pictures", "photographs",
                    "selfies"),
    "gaming": ("gaming", "video games", "playing video games", "playing games", "computer games",
               "play video games", "play games"),
    "entertainment": ("entertainment", "entertaining", "entertain", "relaxing", "relaxation", "enjoyment"),
    "listening": ("listening", "listen", "listening to music", "hearing"),
    "watching": ("watching", "watch", "watching tv", "watching movies", "watching videos", "watching shows",
                 "movies", "videos", "tv shows", "films"),
    "music": ("music", "making music", "playing music", "make music", "play music", "songs", "playing songs"),
    "storage": ("storage", "storing", "store", "storing things", "store things", "keeping things",
                "keep things", "holding things", "organizing", "organising", "putting things away",
                "storing clothes", "storing books"),
    "sitting": ("sitting", "sit", "sitting on", "sit on", "seating"),
    "sleeping": ("sleeping", "sleep", "resting", "rest", "lying down", "naps", "napping"),
    "lighting": ("lighting", "light", "illumination", "seeing in the dark", "making light",
                 "lighting a room"),
    "decoration": ("decoration", "decorating", "decorate", "decor", "beauty", "display", "ornament"),
    "fashion": ("fashion", "style", "looking good", "looking nice", "dressing up", "accessorizing",
                "adornment"),
    "warmth": ("warmth", "keeping warm", "staying warm", "warming"),
    "protection": ("protection", "protecting", "protect", "safety", "keeping safe", "defense"),
    "timekeeping": ("timekeeping", "telling time", "telling the time", "keeping time", "time",
                    "checking the time"),
    "digging": ("digging", "dig", "digging holes"),
    "gardening": ("gardening", "garden work", "yard work", "growing plants", "planting", "lawn care",
                  "landscaping"),
    "watering": ("watering", "watering plants", "water plants", "water the plants", "watering the garden",
                 "water the garden", "spraying water"),
    "raking": ("raking", "rake", "raking leaves", "collecting leaves"),
    "mowing": ("mowing", "mow", "mowing the lawn", "cutting grass", "cutting the grass", "cut grass",
               "cut the grass"),
    "building": ("building", "build", "building things", "construction", "carpentry", "woodworking",
                 "making things", "diy"),
    "repair": ("repair", "repairs", "repairing", "fixing", "fix", "fix things", "fixing things",
               "maintenance"),
    "hitting": ("hitting", "hit", "hitting things", "hitting a ball", "hit a ball", "hitting balls",
                "hit things", "striking", "hammering", "nails", "hammer nails"),
    "cleaning": ("cleaning", "clean", "washing", "wash", "tidying", "sweeping"),
    "salad": ("salad", "salads", "making salad"),
}
# Phrases meaning several uses at once ("Is it used for fun?").
_EXTRA_USES: dict[str, tuple[str, ...]] = {
    "fun": ("play", "entertainment"), "having fun": ("play", "entertainment"),
}
# Use predicates widened by facts: food is "used for eating", things that are cooked "used in cooking".
_USE_ALSO: dict[str, Predicate] = {"eating": _trait("edible"), "cooking": _trait("cooked")}

# Size references for comparisons: rank on the SIZES scale (x.5 sits between two classes).
SIZE_REFERENCES: dict[str, float] = {
    "coin": 0, "pea": 0, "thumb": 0, "finger": 0, "grain of rice": -0.5, "ant": -0.5,
    "fist": 1, "palm": 0.5, "hand": 1, "pocket": 1, "mug": 1, "cup": 1, "book": 1,
    "shoebox": 2, "shoe box": 2, "loaf of bread": 2, "bread loaf": 2, "backpack": 2,
    "breadbox": 2.5, "bread box": 2.5, "microwave": 2.5, "suitcase": 2.5, "chair": 3,
    "person": 3.5, "human": 3.5, "human being": 3.5, "man": 3.5, "woman": 3.5, "adult": 3.5, "me": 3.5,
    "you": 3.5, "people": 3.5, "child": 3, "kid": 3, "refrigerator": 3.5, "fridge": 3.5, "door": 3.5,
    "house": 4.5, "building": 4.5, "room": 4.5, "bus": 4, "car": 4, "football field": 5, "skyscraper": 5,
}
# fmt: on
_SIZE_WORDS = r"bigger|larger|taller|longer|heavier|wider|greater|smaller|shorter|lighter|tinier|littler"


def _size_ref_rank(phrase: str) -> float | None:
    if phrase in SIZE_REFERENCES:
        return SIZE_REFERENCES[phrase]
    obj = _NAME_INDEX.get(_compact(phrase))
    return None if obj is None else float(obj.size)


def _ref_alt() -> str:
    names = {normalize(n) for obj in OBJECTS for n in obj.names}
    return _alt(set(SIZE_REFERENCES) | names)


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
        fixed("indoors", lambda o: bool(o.found & INDOOR_PLACES)),
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

    ref_alt = _ref_alt()
    articles = r"(?:(?:a|an|the|your|my|average|typical|normal|regular|standard|one|full\s+grown|grown)\s+)*"

    def compare(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        rank = _size_ref_rank(re.sub(r"\s+", " ", m.group("ref")))
        assert rank is not None
        if m.group("cmp") in ("smaller", "shorter", "lighter", "tinier", "littler"):
            return f"size<{rank:g}", lambda o: o.size < rank
        return f"size>{rank:g}", lambda o: o.size > rank

    add(r"(?P<cmp>" + _SIZE_WORDS + r")\s+than\s+" + articles + r"(?P<ref>" + ref_alt + r")", compare)

    def same_size(m: re.Match[str], q: str) -> tuple[str, Predicate]:
        rank = _size_ref_rank(re.sub(r"\s+", " ", m.group("ref")))
        assert rank is not None
        return f"size~{rank:g}", lambda o: abs(o.size - rank) <= 0.5

    add(
        r"(?:(?:about|around|roughly)\s+)?(?:the\s+)?(?:size\s+of|as\s+(?:big|large)\s+as|same\s+size\s+as|"
        r"similar\s+(?:in\s+)?size\s+(?:to|as))\s+" + articles + r"(?P<ref>" + ref_alt + r")",
        same_size,
    )
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
        r"(?:on|around|over|in|at|with)\s+(?:(?:your|the|a|ones|peoples|someones|my|their|his|her)\s+)*"
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


def _and(predicates: list[Predicate]) -> Predicate:
    return lambda o: all(p(o) for p in predicates)


def _or(predicates: list[Predicate]) -> Predicate:
    return lambda o: any(p(o) for p in predicates)


def _interpret_part(text: str) -> tuple[str, Predicate] | None:
    target = guess_target(text)
    if target is not None:
        return f"name:{target.name}", (lambda o, t=target: o is t)
    found = guess_phrase(text)
    if found is not None and found[0] in _GENERIC_THINGS:
        return "tangible", _not(_trait("cannot touch"))
    spans = _match_spans(text)
    if not spans:
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
    whole = _interpret_part(text)
    parts = [p.strip() for p in _OR.split(text)]
    if len(parts) > 1 and guess_target(text) is None:
        mapped = [m for m in (_interpret_part(p) for p in parts if p) if m is not None]
        if len(mapped) > 1:
            return Interpretation(_or([p for _, p in mapped]), " | ".join(label for label, _ in mapped))
    if whole is None:
        return Interpretation(None, None)
    return Interpretation(whole[1], whole[0])


class OracleAnswer(NamedTuple):
    yes: bool
    mapped: bool
    attribute: str | None

    @property
    def text(self) -> str:
        return YES if self.yes else NO


def kb_answer(question: str, obj: KBObject) -> OracleAnswer:
    """The kb-oracle's answer about ``obj``: a correct guess is always ``Yes.``; an unmapped question is
    ``No.`` with ``mapped=False``."""
    if is_correct_guess(question, obj):
        return OracleAnswer(True, True, f"name:{obj.name}")
    meaning = interpret(question)
    if meaning.predicate is None:
        return OracleAnswer(False, False, None)
    return OracleAnswer(bool(meaning.predicate(obj)), True, meaning.attribute)


@lru_cache(maxsize=16384)
def yes_mask(question: str) -> int:
    """Bit ``i`` is set when the kb-oracle answers ``Yes.`` about ``OBJECTS[i]`` (for the policies)."""
    return sum(1 << obj.index for obj in OBJECTS if kb_answer(question, obj).yes)


# --- a model in the oracle role ------------------------------------------------------------------
def oracle_messages(obj: KBObject, question: str) -> list[dict[str, str]]:
    """The chat a model oracle sees: the object and the rules as the system prompt, the question."""
    also = f" (also called: {', '.join(obj.variants)})" if obj.variants else ""
    system = (
        "You are the oracle in a game of twenty questions. The secret object is: "
        f"{obj.name.lower()}{also}, an everyday object from the category {obj.category.lower()}. "
        "The player asks yes/no questions to find it. Answer each question truthfully about the secret "
        'object with exactly one word, "Yes." or "No.", and nothing else. If the question names the secret '
        '(or one of its other names), answer "Yes.". If a question cannot be answered with yes or no, '
        'answer "No.". Never reveal the object and never explain.'
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{question}\nAnswer with Yes. or No."},
    ]


_REPLY_YES = re.compile(
    r"^(?:yes|yeah|yea|yep|yup|ya|aye|correct|right|true|affirmative|indeed|sure|of\s+course|"
    r"(?:definitely|absolutely|certainly|probably|likely|mostly|usually|generally|typically|often|sometimes)"
    r"(?!\s+not)\b(?:\s+yes)?|it\s+(?:is|does|can|has)\b(?!\s*n)|that\s+is\s+(?:right|correct))\b"
)
_REPLY_NO = re.compile(
    r"^(?:no|nope|nah|nay|not|never|incorrect|wrong|false|negative|"
    r"(?:definitely|absolutely|certainly|probably|usually|generally|mostly)\s+not|"
    r"it\s+(?:is|does|can|has)\s*n\s*t|it\s+(?:is|does|can|has)\s+not|its\s+not|isnt|doesnt|cant|hasnt)\b"
)
_ANSWER_MARKER = re.compile(r"\banswer\s+(?:is\s+)?(yes|no)\b")


def parse_oracle_reply(reply: str) -> tuple[str, bool]:
    """A model oracle's reply as ``"Yes."`` or ``"No."`` and whether it could not be read.

    The start of the reply decides ("Yes, it is" / "Nope" / "Definitely not" / "It is not"); else an
    "answer: yes|no" marker; else a reply mentioning only one of yes/no; anything else is ``No.`` with
    the failure flag set (the paper's oracle mapped unreadable output to "No." too)."""
    text = normalize(reply)
    text = re.sub(r"^(?:(?:oracle|answer|a|reply|response)\s+)+", "", text)
    if _REPLY_NO.match(text):
        return NO, False
    if _REPLY_YES.match(text):
        return YES, False
    marker = _ANSWER_MARKER.search(text)
    if marker:
        return (YES if marker.group(1) == "yes" else NO), False
    words = set(text.split())
    has_yes, has_no = bool(words & {"yes", "yep", "yeah"}), bool(words & {"no", "nope"})
    if has_yes != has_no:
        return (YES if has_yes else NO), False
    return NO, True


RUBRIC_ORACLE_FAITHFULNESS = (
    "This is a game of twenty questions: the agent asks yes/no questions about a secret everyday object "
    'and the environment lines are the oracle\'s answers, each "Yes." or "No.". The secret is named in '
    "the final environment line when the agent ran out of questions; otherwise the agent's last question, "
    'answered "Yes.", names it. Rate the ORACLE, not the agent, on faithfulness: is every answer true of '
    "the secret object as most people would judge it, and consistent with the other answers? Questions "
    'that are ambiguous or not yes/no questions may fairly get "No.". 1 = many answers are false or '
    "contradict each other; 3 = mostly true, with a few clearly wrong answers; 5 = every answer is true "
    "of the object."
)


# --- scripted policies ---------------------------------------------------------------------------
# Generic yes/no questions the scripted questioners choose from; every one maps to KB attributes.
QUESTION_BANK: tuple[str, ...] = (
    "Is it an animal?",
    "Is it a fruit?",
    "Is it a vegetable?",
    "Is it a vehicle?",
    "Is it a piece of clothing?",
    "Is it an electronic device?",
    "Is it a musical instrument?",
    "Is it a piece of furniture?",
    "Is it an office supply?",
    "Is it sports equipment?",
    "Is it related to art?",
    "Is it a kitchen tool?",
    "Is it a natural feature?",
    "Is it a toy?",
    "Is it jewelry?",
    "Is it a garden tool?",
    "Is it a tool?",
    "Is it alive?",
    "Can you eat it?",
    "Is it man-made?",
    "Does it use electricity?",
    "Does it have a screen?",
    "Does it have buttons?",
    "Does it have wheels?",
    "Does it have legs?",
    "Does it have four legs?",
    "Do you wear it?",
    "Is it worn on the head?",
    "Is it worn on the feet?",
    "Is it worn on the upper body?",
    "Does it come in pairs?",
    "Does it keep you warm?",
    "Is it bigger than a breadbox?",
    "Is it bigger than a person?",
    "Is it bigger than a house?",
    "Can you hold it in one hand?",
    "Is it smaller than a hand?",
    "Is it made of metal?",
    "Is it made of wood?",
    "Is it made of plastic?",
    "Is it made of fabric?",
    "Is it made of glass?",
    "Is it made of paper?",
    "Is it made of rubber?",
    "Is it made of gold or silver?",
    "Is it found in the kitchen?",
    "Is it found in the bedroom?",
    "Is it found in the living room?",
    "Is it found in an office?",
    "Is it found at school?",
    "Is it found outdoors?",
    "Is it found in a garden?",
    "Is it found on a farm?",
    "Is it found in the water?",
    "Is it found in the sky?",
    "Is it found in the wild?",
    "Is it found in a museum?",
    "Is it kept in a garage?",
    "Is it a mammal?",
    "Is it a pet?",
    "Can it fly?",
    "Can it swim?",
    "Does it eat meat?",
    "Does it have fur?",
    "Is it dangerous?",
    "Is it sweet?",
    "Is it juicy?",
    "Does it grow on trees?",
    "Does it grow underground?",
    "Is it usually cooked before eating?",
    "Do you peel it before eating?",
    "Does it have seeds?",
    "Is it a tropical fruit?",
    "Is it a citrus fruit?",
    "Is it red?",
    "Is it green?",
    "Is it yellow?",
    "Is it orange in color?",
    "Is it brown?",
    "Is it white?",
    "Is it black?",
    "Is it silver in color?",
    "Is it round?",
    "Is it long and thin?",
    "Is it flat?",
    "Is it rectangular?",
    "Is it sharp?",
    "Is it soft?",
    "Is it heavy?",
    "Is it fragile?",
    "Is it expensive?",
    "Does it have a handle?",
    "Does it have strings?",
    "Do you blow into it?",
    "Is it a percussion instrument?",
    "Is it played in an orchestra?",
    "Does it have keys?",
    "Does it have an engine?",
    "Does it have a motor?",
    "Can you ride it?",
    "Does it carry passengers?",
    "Is it public transport?",
    "Does it have doors?",
    "Does it make noise?",
    "Is it loud?",
    "Does it give off light?",
    "Is it hot?",
    "Does it have a battery?",
    "Do you plug it in?",
    "Can it connect to the internet?",
    "Can it take pictures?",
    "Does it tell time?",
    "Does it have numbers on it?",
    "Is it a ball?",
    "Is it used in a team sport?",
    "Is it used to hit things?",
    "Is it used for cooking?",
    "Is it used for eating?",
    "Is it used for cutting?",
    "Is it used for writing?",
    "Is it used for drawing?",
    "Is it used for painting?",
    "Is it used for measuring?",
    "Is it used to attach things together?",
    "Is it used for storage?",
    "Is it used for sitting?",
    "Is it used for sleeping?",
    "Is it used for transportation?",
    "Is it used for entertainment?",
    "Is it used for listening to music?",
    "Is it used for communication?",
    "Is it used for digging?",
    "Is it used for watering plants?",
    "Is it used for repairs?",
    "Is it used for decoration?",
    "Is it used for protection?",
    "Is it used in salads?",
    "Is it sticky?",
    "Does it have drawers?",
    "Does it have shelves?",
    "Is it a container?",
    "Does it have a blade?",
    "Is it tall?",
    "Can you climb it?",
    "Is it a body of water?",
    "Is it related to the weather?",
    "Is it colorful?",
    "Is it for children?",
    "Does it move by itself?",
    "Does it have wings?",
    "Does it have a tail?",
    "Does it have leaves?",
    "Is it a plant?",
    "Is it worn on the wrist?",
    "Is it worn around the neck?",
    "Is it worn on the hands?",
    "Is it cylindrical?",
)

BEHAVIOR_SMART_P = 0.06  # chance the behavior questioner asks the best-splitting question
BEHAVIOR_RANDOM_GUESS_P = 0.2  # chance a "random" behavior turn is a guess at a random object
BEHAVIOR_GUESS_AT = 2  # the behavior questioner guesses once this few candidates remain
OPTIMAL_GUESS_AT = 2  # the optimal questioner guesses once this few candidates remain
RANDOM_GUESS_P = 0.25  # share of guesses among the random policy's questions
_ALL = (1 << len(OBJECTS)) - 1


def candidate_mask(task: TwentyQuestions) -> int:
    """Objects consistent with every answer so far (bit i = OBJECTS[i]). An answer that would leave no
    candidate (an oracle contradicting the KB) is skipped, so the set is never empty."""
    mask = _ALL
    for question, answered_yes in task.dialogue:
        yes = yes_mask(question)
        narrowed = mask & (yes if answered_yes else ~yes)
        if narrowed:
            mask = narrowed
    return mask


def _members(mask: int) -> list[KBObject]:
    return [obj for obj in OBJECTS if mask >> obj.index & 1]


def best_question(mask: int, asked: set[str]) -> str | None:
    """The unasked bank question whose yes/no split of the candidates is most even (first in bank order
    on ties); ``None`` when no question splits them."""
    total = mask.bit_count()
    best, best_score = None, 0
    for question in QUESTION_BANK:
        if question in asked:
            continue
        yes = (yes_mask(question) & mask).bit_count()
        score = min(yes, total - yes)
        if score > best_score:
            best, best_score = question, score
    return best


def _asked(task: TwentyQuestions) -> set[str]:
    return {question for question, _ in task.dialogue}


def random_policy(task: TwentyQuestions, rng: random.Random) -> str:
    if rng.random() < RANDOM_GUESS_P:
        return rng.choice(OBJECTS).guess_question()
    return rng.choice(QUESTION_BANK)


def optimal_policy(task: TwentyQuestions, rng: random.Random) -> str:
    """Greedy best split; guesses (in KB order) once at most ``OPTIMAL_GUESS_AT`` candidates remain."""
    mask = candidate_mask(task)
    asked = _asked(task)
    candidates = [o for o in _members(mask) if o.guess_question() not in asked]
    if candidates and len(candidates) <= OPTIMAL_GUESS_AT:
        return candidates[0].guess_question()
    question = best_question(mask, asked)
    if question is None:
        return (candidates or list(OBJECTS))[0].guess_question()
    return question


def behavior_policy(task: TwentyQuestions, rng: random.Random) -> str:
    """The dataset-generating questioner (module docstring): mostly random bank questions and some random
    guesses, the best split with probability ``BEHAVIOR_SMART_P``, and a guess at a random remaining
    candidate once at most ``BEHAVIOR_GUESS_AT`` remain."""
    mask = candidate_mask(task)
    asked = _asked(task)
    candidates = [o for o in _members(mask) if o.guess_question() not in asked]
    if candidates and len(candidates) <= BEHAVIOR_GUESS_AT:
        return rng.choice(candidates).guess_question()
    if rng.random() < BEHAVIOR_SMART_P:
        question = best_question(mask, asked)
        if question is not None:
            return question
    if rng.random() < BEHAVIOR_RANDOM_GUESS_P:
        return rng.choice(OBJECTS).guess_question()
    unasked = [q for q in QUESTION_BANK if q not in asked]
    return rng.choice(unasked or list(QUESTION_BANK))


def kb_oracle_policy(task: TwentyQuestions, rng: random.Random) -> str:
    """The built-in oracle (role ``oracle``): the KB's answer to the pending question."""
    if task.pending_question is None:
        return NO
    return kb_answer(task.pending_question, task.secret).text


# --- parsing the agent's question ----------------------------------------------------------------
_QUESTION_MARKER = re.compile(r"(?im)^[\s>*_#`-]*(?:final\s+|next\s+|my\s+)?question(?:\s*\d+)?\s*[:=]\s*")
_STRIP = " \t*_`\"'“”‘’«»>#-"
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'“‘(]?[A-Z])")
_LIST_MARK = re.compile(r"^(?:\d+[.)]|[-*•])\s+")
MAX_QUESTION_CHARS = 300


def _clean_line(line: str) -> str:
    return _LIST_MARK.sub("", line.strip().strip(_STRIP)).strip().strip(_STRIP)


def parse_question(raw: str) -> str | None:
    """The question in a model's reply (module docstring), or ``None`` when there is none."""
    markers = list(_QUESTION_MARKER.finditer(raw))
    if markers:
        rest = [_clean_line(line) for line in raw[markers[-1].end() :].splitlines()]
        line = next((x for x in rest if x), "")
        if "?" in line:
            line = line[: line.index("?") + 1]
    else:
        lines = [x for x in (_clean_line(line) for line in raw.splitlines()) if x]
        line = next((x for x in lines if x.endswith("?")), lines[0] if len(lines) == 1 else "")
    line = _SENTENCE_BREAK.split(line)[-1].strip().strip(_STRIP) if line else ""
    if not line or not normalize(line):
        return None
    return line[:MAX_QUESTION_CHARS]


# --- the environment -----------------------------------------------------------------------------
def _is_kb_oracle(partner: Any) -> bool:
    return getattr(partner, "spec", None) == f"scripted/{KB_ORACLE}"


@register_task
class TwentyQuestions(Task):
    name: ClassVar[str] = "twenty-questions"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = (
        "Find the everyday object (158 in 17 categories) with at most 20 yes/no questions to an oracle."
    )
    anchors: ClassVar[Anchors] = Anchors(min=-20.0, avg=-17.3, max=-12.6, source="paper Table 5")
    reward_range: ClassVar[tuple[float, float]] = (-20.0, 0.0)
    roles: ClassVar[dict[str, str]] = {"oracle": f"scripted/{KB_ORACLE}"}
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "behavior": behavior_policy,
        "optimal": optimal_policy,
        KB_ORACLE: kb_oracle_policy,
    }
    text_header: ClassVar[str] = "Questions:\n"
    max_steps = MAX_QUESTIONS

    def __init__(self, secret: str = "index", **options: Any) -> None:
        super().__init__(**options)
        key = str(secret).strip()
        if key.lower() in ("index", "random"):
            self.secret_mode = key.lower()
            self._fixed: KBObject | None = None
        else:
            found = find_object(key)
            if found is None:
                raise InvalidTaskOption(
                    f'secret must be "index", "random" or the name of one of the {len(OBJECTS)} objects, '
                    f"not {secret!r}"
                )
            self.secret_mode, self._fixed = found.name, found
        self.rng = random.Random(0)
        self._start(OBJECTS[0])

    def _start(self, secret: KBObject) -> None:
        self.secret = secret
        self.turn = 0
        self.dialogue: list[tuple[str, bool]] = []  # (question, answered yes) for the valid questions
        self.pending_question: str | None = None
        self.done = False
        self._success = False
        self.unmapped = 0
        self.parse_failures = 0
        self.invalid = 0
        self.guesses = 0
        self.named_secret = False
        self.oracle_kind = "kb"

    def reset(self, seed: int, index: int = 0) -> str:
        self.rng = random.Random(seed)
        if self._fixed is not None:
            secret = self._fixed
        elif self.secret_mode == "random":
            secret = self.rng.choice(OBJECTS)
        else:
            secret = OBJECTS[index % len(OBJECTS)]
        self._start(secret)
        return INTRO

    # The sync path always answers with the knowledge base; the runner calls ``astep``, which asks
    # whoever fills the ``oracle`` role.
    def step(self, action: str | None) -> StepResult:
        partner = (getattr(self, "partners", None) or {}).get("oracle")
        if partner is not None and not _is_kb_oracle(partner):
            raise RuntimeError("twenty-questions with a model oracle needs `await task.astep(action)`")
        question = self._begin(action)
        if question is None:
            return self._invalid_step()
        return self._answer(question, kb_answer(question, self.secret).text, model=False)

    async def astep(self, action: str | None) -> StepResult:
        question = self._begin(action)
        if question is None:
            return self._invalid_step()
        partner = (getattr(self, "partners", None) or {}).get("oracle")
        if partner is None:
            return self._answer(question, kb_answer(question, self.secret).text, model=False)
        reply = await self.ask("oracle", oracle_messages(self.secret, question))
        return self._answer(question, reply, model=not _is_kb_oracle(partner))

    def _begin(self, action: str | None) -> str | None:
        if self.done:
            raise RuntimeError("step() called on a finished twenty-questions episode")
        self.turn += 1
        question = (action or "").strip()
        self.pending_question = question or None
        return self.pending_question

    def _invalid_step(self) -> StepResult:
        self.invalid += 1
        info: dict[str, Any] = {"question": None, "answer": NO, "questions": self.turn}
        return self._result(NO, -1.0, info, invalid=True)

    def _answer(self, question: str, reply: str, model: bool) -> StepResult:
        info: dict[str, Any] = {"question": question, "questions": self.turn}
        kb = kb_answer(question, self.secret)
        if model:
            self.oracle_kind = "model"
            answer, failed = parse_oracle_reply(reply)
            self.parse_failures += failed
            info.update(
                oracle="model",
                oracle_parse_failed=failed,
                oracle_reply=reply[:200],
                kb_answer=kb.text if kb.mapped else None,
            )
        else:
            answer = reply.strip() if reply.strip() in (YES, NO) else parse_oracle_reply(reply)[0]
            info.update(oracle="kb", oracle_mapped=kb.mapped, attribute=kb.attribute)
            self.unmapped += not kb.mapped
        target = guess_target(question)
        correct = is_correct_guess(question, self.secret)
        self.guesses += target is not None or correct
        self.named_secret |= correct
        info.update(answer=answer, guess=target.name if target else None, correct_guess=correct)
        self.dialogue.append((question, answer == YES))
        self.pending_question = None
        if correct and answer == YES:
            self.done = self._success = True
            info["outcome"] = "correct"
            return StepResult(answer, 0.0, True, False, info)
        return self._result(answer, -1.0, info)

    def _result(self, answer: str, reward: float, info: dict[str, Any], invalid: bool = False) -> StepResult:
        if self.turn < MAX_QUESTIONS:
            return StepResult(answer, reward, False, invalid, info)
        self.done = True
        info["outcome"] = "out_of_questions"
        reveal = f"That was your last question. The object was {self.secret.label}."
        return StepResult(f"{answer}\n{reveal}", reward, True, invalid, info)

    def parse(self, raw: str) -> str | None:
        return parse_question(raw)

    @property
    def success(self) -> bool:
        return self._success

    def episode_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "secret": self.secret.name,
            "category": self.secret.category,
            "questions": self.turn,
            "guessed": self.named_secret,
            "guesses": self.guesses,
            "invalid_questions": self.invalid,
            "oracle": self.oracle_kind,
        }
        if self.oracle_kind == "kb":
            info["unmapped_questions"] = self.unmapped
        else:
            info["oracle_parse_failures"] = self.parse_failures
        return info

    def options(self) -> dict[str, Any]:
        return {"secret": self.secret_mode}

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text" and history and history[0].kind == "observation" and history[0].text == INTRO:
            history = history[1:]  # the paper's transcripts start with "Questions:" and the first question
        return super().render(history, style)

    def system_prompt(self) -> str:
        categories = ", ".join(c.lower() for c in CATEGORIES)
        return (
            "Let's play twenty questions. I am thinking of an everyday object; it belongs to one of these "
            f"categories: {categories}. Find it by asking yes/no questions, one per turn. I answer every "
            'question with exactly "Yes." or "No."; questions I cannot answer with yes or no get "No.".\n'
            'To guess, ask whether it is that object, e.g. "Is it a basketball?": a guess counts only if the '
            'question names the object itself, not something related ("Is it a ball?" or "Is it used in '
            'basketball?" are ordinary questions).\n'
            'Every question costs -1. The question that names the object and gets "Yes." costs 0 and ends '
            f"the game. After {MAX_QUESTIONS} questions the game is over.\n"
            "Ask exactly one yes/no question per turn. You may think first, but end your reply with a final "
            "line of the form\nQuestion: Is it an animal?"
        )


def measure_policy(
    policy: str = "behavior", episodes: int = 2 * len(OBJECTS), seed: int = 0, secret: str = "index"
) -> dict[str, float]:
    """Play ``policy`` against the kb-oracle for indices 0..episodes-1 (no runner, no I/O) and return
    the success rate, mean and std of the return, and mean length. ``measure_policy("behavior")`` is how
    ``BEHAVIOR_SMART_P`` was tuned (158 x 2 episodes)."""
    task = TwentyQuestions(secret=secret)
    returns, lengths, wins = [], [], 0
    for index in range(episodes):
        episode_seed = seed * 1_000_003 + index
        task.reset(episode_seed, index)
        rng = random.Random(episode_seed ^ 0x5EED)
        total, n = 0.0, 0
        while not task.done:
            result = task.step(task.parse(TwentyQuestions.policies[policy](task, rng)))
            total += result.reward
            n += 1
        returns.append(total)
        lengths.append(n)
        wins += task.success
    return {
        "episodes": episodes,
        "success": wins / episodes,
        "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns),
        "mean_length": statistics.fmean(lengths),
        "std_length": statistics.pstdev(lengths),
    }
