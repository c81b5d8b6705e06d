"""Text-Nav (LMRL-Gym §4.2): carry the stale food from the living-room table into the kitchen fridge.

Two variants share one environment: ``textnav-fo`` (fully observed: each observation names the room and
lists what the agent carries) and ``textnav-po`` (partially observed: both hidden, so the agent must infer
where it is from furniture, exits and its own history). The original built the house with TextWorld; this
is a small self-contained engine for the same house, so nothing needs TextWorld or Inform7.

The house (the original ``make_game.py``, 8 rooms; the paper's text says 10). Exits are two-way, and the
map is a consistent grid (tested), so no direction had to be changed::

                   garden                                           north
                     |                                                ^
        backyard - kitchen - dining room - living room - bedroom      west < > east
                                                |           |
                                             office  -  bathroom

    bedroom -west-> living room -west-> dining room -west-> kitchen -west-> backyard
    kitchen -north-> garden;  living room -south-> office -east-> bathroom;  bedroom -south-> bathroom

Objects, as in the original: a table in the bedroom (a bowl on it), in the living room (the stale food
and the fresh food) and in the dining room (a coffee cup and a plate); a closed chest in the office (the
utensils inside); a closed fridge in the kitchen (the fruit inside). Stale food, fresh food and fruit are
food (edible); everything but the furniture can be carried.

Rules (TextWorld's, for this house):

* **Commands** are exactly the admissible commands of the current state, sorted alphabetically, as the
  original listed them (``examine``/``look``/``inventory`` left out, as the original filtered them):
  ``go <dir>`` for each exit; ``take X from table`` / ``take X`` (from the floor) / ``take X from C``
  (an open container); ``put X on table``, ``insert X into C`` (open container), ``drop X``, ``eat X``
  (food only) for a carried X; ``open C`` / ``close C`` for the chest and the fridge.
* **Win**: the stale food in the fridge *and* the fridge closed (the original's win event had both
  conditions), so the winning action is always ``close fridge``; reward 1, episode ends, success.
* **Failure**: ``eat stale food`` ends the episode with reward 0 (the original's fail event). Eating the
  fresh food or the fruit is allowed and harmless (the item is gone).
* Every other action gets reward 0. Rewards are therefore 0 or 1 and the return is 1 exactly on success.
* **Invalid** actions (``None``, a reply ``parse`` refused, or a string that is not admissible now):
  reward 0, state unchanged, flagged invalid, counted as a step; the observation is ``That is not
  possible here.`` followed by the current state. (TextWorld answered such commands with a refusal and
  no state change too.)
* **Step cap** (option ``max_steps``, default 15 = the paper's data-collection horizon): after that many
  agent actions (invalid ones included) the episode ends with reward 0 and no success, unless that last
  action won. The original env class had no cap; the shortest solution takes at most 9 actions (from the
  garden or the backyard), so 15 leaves 6 actions of slack. The normalization's average anchor (0.26) is the
  dataset's success rate under that same 15-step horizon.
* **Start room**: episode ``index`` starts in ``ROOMS[index % 8]`` (the original drew a random room per
  game), so ``--episodes 8k`` covers every room equally; the house itself never changes, and the episode
  seed only seeds ``self.rng`` (kept for the contract: the dynamics are deterministic).

Observations (the same string for ``chat`` and ``text`` styles; ``text`` is the paper's raw
concatenation): the first one starts with the objective sentence. Each one then gives the feedback for
the last action, [FO: ``You are in the <room>.``], the room's furniture and visible objects (on its
table, on the floor, inside an open container), its exits, [FO: ``You are carrying: ...``] and a final
line ``Admissible commands: a, b, c``. The room descriptions never name a room, so PO observations name
rooms only in the objective sentence (tested); the original's TextWorld grammar hid the location the same
way. As in the original, the admissible commands still reveal some of what PO hides (``drop stale food``
means the agent carries it). Terminal observations end with ``You won!`` / ``You lost!`` / ``You are out
of moves.`` and list no commands.

History shown to text-style policies: FO shows only the latest observation (``text_window = 1``: it
holds room, inventory, visible objects and exits, the paper's four-part FO state); PO shows the whole
episode (``text_window = None``; at most 29 segments under the default cap). The original env returned
the whole history for both and its policies truncated it to their input length.

Scripted policies: ``random`` (a uniformly random admissible command), ``optimal`` (re-plans a shortest
solution from the current state, wherever the stale food is; 7.625 actions on average over the 8 start
rooms, at most 9), ``behavior`` and ``behavior-code`` (the original ``collect_data.py`` agent: half-room
walkthrough, else random). **Deviation**: the committed agent follows its walkthrough with probability
0.1 per decision, which wins only ~0.3% of 15-step episodes and cannot have produced the paper's dataset
(success 0.26, mean length 12.2); with probability 0.9 (the paper's "near-optimal in one half") it wins
~0.22 with mean length ~12.9. ``behavior`` uses 0.9 (it is the dataset policy); ``behavior-code`` keeps
0.1. See ``partial_walkthrough``.
"""

from __future__ import annotations

import json
import random
import re
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

from lmrl.parsing import Invalid, Parsed, Span, non_overlapping, read_action
from lmrl.task import Anchors, InvalidTaskOption, Policy, StepResult, Task
from lmrl.tasks.registry import register_task

# --- the house -----------------------------------------------------------------------------------
HOUSE_PATH = Path(__file__).parent / "data" / "textnav_house.json"
_HOUSE: dict[str, Any] = json.loads(HOUSE_PATH.read_text(encoding="utf-8"))
# Room order of the original ``make_game.py``; episode ``index`` starts in ROOMS[index % 8].
ROOMS: tuple[str, ...] = tuple(_HOUSE["rooms"])
DIRECTIONS: tuple[str, ...] = ("north", "south", "east", "west")  # also the shortest-path tie-break order
OPPOSITE: dict[str, str] = {"north": "south", "south": "north", "east": "west", "west": "east"}
# (room, direction, room it leads to); each also gives the way back in the opposite direction.
CONNECTIONS: tuple[tuple[str, str, str], ...] = tuple(tuple(door) for door in _HOUSE["connections"])


def _exits() -> dict[str, dict[str, str]]:
    exits: dict[str, dict[str, str]] = {room: {} for room in ROOMS}
    for room, direction, other in CONNECTIONS:
        exits[room][direction] = other
        exits[other][OPPOSITE[direction]] = room
    return {room: dict(sorted(ways.items())) for room, ways in exits.items()}


EXITS: dict[str, dict[str, str]] = _exits()

TABLE_ROOMS: frozenset[str] = frozenset(_HOUSE["table_rooms"])
CONTAINER_ROOM: dict[str, str] = dict(_HOUSE["container_room"])
ROOM_CONTAINER: dict[str, str] = {room: container for container, room in CONTAINER_ROOM.items()}
# Each table has its own look, as the original's generated descriptions had (unstable / solid / shaky).
TABLE_LOOK: dict[str, str] = dict(_HOUSE["table_look"])

STALE = "stale food"
# Listing order of objects everywhere (tables, containers, floor, inventory).
OBJECTS: tuple[str, ...] = tuple(thing["name"] for thing in _HOUSE["objects"])
FOODS: frozenset[str] = frozenset(thing["name"] for thing in _HOUSE["objects"] if thing["food"])
ARTICLE: dict[str, str] = {thing["name"]: thing["article"] for thing in _HOUSE["objects"]}

# Where an object is: ("table", room), ("floor", room), ("in", container), ("carried", ""), ("eaten", "").
Place = tuple[str, str]
CARRIED: Place = ("carried", "")
EATEN: Place = ("eaten", "")
START_PLACES: dict[str, Place] = {thing["name"]: tuple(thing["start"]) for thing in _HOUSE["objects"]}

OBJECTIVE: str = _HOUSE["objective"]
INVALID = "That is not possible here."
DEFAULT_MAX_STEPS = 15  # the paper's data-collection horizon


def _next_hops() -> dict[str, dict[str, str]]:
    """For every target room: the first ``go`` direction of a shortest path from every other room.

    BFS from the target; ties go to the first direction in ``DIRECTIONS`` (so the bathroom heads north,
    through the bedroom, as the original walkthrough table does)."""
    hops: dict[str, dict[str, str]] = {}
    for target in ROOMS:
        distance = {target: 0}
        queue = deque([target])
        while queue:
            room = queue.popleft()
            for other in EXITS[room].values():
                if other not in distance:
                    distance[other] = distance[room] + 1
                    queue.append(other)
        hops[target] = {
            room: next(
                d for d in DIRECTIONS if distance.get(EXITS[room].get(d, ""), -9) == distance[room] - 1
            )
            for room in ROOMS
            if room != target
        }
    return hops


NEXT_HOP: dict[str, dict[str, str]] = _next_hops()


def path(start: str, target: str) -> list[str]:
    """The ``go`` commands of the shortest path from ``start`` to ``target``."""
    commands = []
    while start != target:
        direction = NEXT_HOP[target][start]
        commands.append(f"go {direction}")
        start = EXITS[start][direction]
    return commands


def walkthrough(start: str) -> list[str]:
    """The original's walkthrough: to the living room, take the stale food, to the kitchen, store it."""
    return [
        *path(start, "living room"),
        f"take {STALE} from table",
        *path("living room", "kitchen"),
        "open fridge",
        f"insert {STALE} into fridge",
        "close fridge",
    ]


def _listing(names: list[str]) -> str:
    items = [ARTICLE[name] for name in names]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def describe_exits(room: str) -> str:
    ways = list(EXITS[room])  # alphabetical, as TextWorld lists them
    if len(ways) == 1:
        return f"There is an exit to the {ways[0]}."
    return f"There are exits to the {', '.join(ways[:-1])} and {ways[-1]}."


# --- parsing ---------------------------------------------------------------------------------------
# Every command of the house's grammar, admissible now or not, as free text reads it: articles and a
# few synonyms allowed ("pick up the stale food", "head westward", "put the stale food in the fridge").
# A command that is well formed but not admissible now is not a candidate; it still hides the words
# inside it (``non_overlapping``) and, as a whole answer, is refused as ``not-allowed``.
_ART = r"(?:(?:the|a|an|some|my|that)\s+)?"
_OBJ = "|".join(re.escape(name).replace(r"\ ", r"\s+") for name in sorted(OBJECTS, key=len, reverse=True))
_CONTAINER = r"chest|fridge|refrigerator"
_COMMAND = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?:go|move|walk|head|travel|run)\s+(?:to\s+(?:the\s+)?)?(?P<dir>north|south|east|west)(?:wards?)?"
    rf"|(?:take|pick\s+up|grab)\s+{_ART}(?P<take>{_OBJ})"
    rf"(?:\s+(?:from|off|out\s+of)\s+{_ART}(?P<source>table|{_CONTAINER}))?"
    rf"|(?:put|place|set|leave)\s+{_ART}(?P<put>{_OBJ})\s+(?:on|onto|upon)\s+{_ART}table"
    rf"|(?:insert|put|place|store|stash)\s+{_ART}(?P<insert>{_OBJ})\s+(?:in|into|inside)\s+{_ART}"
    rf"(?P<into>{_CONTAINER})"
    rf"|(?P<verb>open|close|shut)\s+{_ART}(?P<container>{_CONTAINER})"
    rf"|drop\s+{_ART}(?P<drop>{_OBJ})"
    rf"|eat\s+{_ART}(?P<eat>{_OBJ})"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_MARKERS = ("action", "command")
# A whole answer that is only a direction: "west", "W", "westward".
_BARE_DIRECTION: dict[str, str] = {
    **{d: f"go {d}" for d in DIRECTIONS},
    **{d[0]: f"go {d}" for d in DIRECTIONS},
    **{f"{d}ward": f"go {d}" for d in DIRECTIONS},
    **{f"{d}wards": f"go {d}" for d in DIRECTIONS},
}
# Commands TextWorld has but the original filtered out of the admissible list.
_FILTERED = re.compile(r"(?:look|inventory|examine\b.*|look\s+at\b.*)", re.IGNORECASE)


def _words(text: str) -> str:
    return " ".join(text.lower().split())


def _container(text: str) -> str:
    return "fridge" if text.lower().startswith("refrigerator") else text.lower()


def command_of(found: re.Match[str], admissible: list[str]) -> str:
    """The command a grammar match names (canonical, admissible or not). ``take X`` without a source
    names the only way to take X here (``take X from table``)."""
    if found["dir"]:
        return f"go {found['dir'].lower()}"
    if found["take"]:
        name = _words(found["take"])
        if found["source"]:
            return f"take {name} from {_container(found['source'])}"
        ways = [c for c in admissible if c == f"take {name}" or c.startswith(f"take {name} from ")]
        return ways[0] if len(ways) == 1 else f"take {name}"
    if found["put"]:
        return f"put {_words(found['put'])} on table"
    if found["insert"]:
        return f"insert {_words(found['insert'])} into {_container(found['into'])}"
    if found["verb"]:
        verb = "close" if found["verb"].lower() == "shut" else found["verb"].lower()
        return f"{verb} {_container(found['container'])}"
    if found["drop"]:
        return f"drop {_words(found['drop'])}"
    return f"eat {_words(found['eat'])}"


# --- scripted policies ---------------------------------------------------------------------------
def random_policy(task: TextNav, rng: random.Random) -> str:
    return rng.choice(task.admissible_commands())


def optimal_command(task: TextNav) -> str:
    """The next command of a shortest solution from the current state (re-planned every call)."""
    place = task.places[STALE]
    room = task.room
    if place == EATEN:  # nothing can win any more (the episode has ended)
        return task.admissible_commands()[0]
    if place in (CARRIED, ("in", "fridge")):
        if room != "kitchen":
            return f"go {NEXT_HOP['kitchen'][room]}"
        if place == CARRIED:
            return f"insert {STALE} into fridge" if task.open["fridge"] else "open fridge"
        return "close fridge"  # the food is in the (open) fridge: a closed one would have ended the game
    kind, where = place
    target = CONTAINER_ROOM[where] if kind == "in" else where
    if room != target:
        return f"go {NEXT_HOP[target][room]}"
    if kind == "table":
        return f"take {STALE} from table"
    if kind == "floor":
        return f"take {STALE}"
    return f"take {STALE} from {where}" if task.open[where] else f"open {where}"


def optimal_policy(task: TextNav, rng: random.Random) -> str:
    return optimal_command(task)


# The original ``collect_data.py`` (``PartialWalkthroughAgent``): each episode, with probability 0.75
# the agent is "optimal" in the rooms off the main corridor, else in the corridor rooms. In one of its
# rooms, when it has no queued commands, it starts that room's walkthrough segment with some probability
# per decision (drawn before the room test, as the original did), else it plays a random admissible
# command. The committed code uses probability 0.1 (``rng.rand() > 0.9``); that cannot have produced the
# paper's dataset (success 0.26, mean length 12.2): it succeeds in 0.3% of 15-step episodes (0.0% with
# the original's fixed ``RandomState(1234)`` per episode). Probability 0.9, which matches the paper's
# words ("near-optimal in one half, random elsewhere"), gives 0.22 and 12.9 (0.25 with the fixed seed).
# So ``behavior`` uses 0.9 and ``behavior-code`` keeps the committed 0.1.
BEHAVIOR_ROOM_SETS: tuple[frozenset[str], ...] = tuple(
    frozenset(rooms) for rooms in _HOUSE["behavior_room_sets"]
)
BEHAVIOR_FIRST_SET_P = 0.75
BEHAVIOR_WALKTHROUGH_P = 0.9  # ``behavior``: reproduces the paper's dataset statistics
BEHAVIOR_CODE_WALKTHROUGH_P = 0.1  # ``behavior-code``: the committed collect_data.py
# The original's per-room walkthrough segments: [without the stale food, with it].
BEHAVIOR_WALKTHROUGH: dict[str, tuple[tuple[str, ...], ...]] = {
    room: tuple(tuple(segment) for segment in segments)
    for room, segments in _HOUSE["behavior_walkthrough"].items()
}


def partial_walkthrough(task: TextNav, rng: random.Random, walkthrough_p: float) -> str:
    """One decision of the original's ``PartialWalkthroughAgent``, replicated step for step.

    Its memory lives in ``task.policy_memory`` (cleared by ``reset``): the chosen room set, the queued
    walkthrough commands (played even if no longer admissible, which then are invalid steps, as the
    original's were refused by TextWorld) and the original's ``has_stale_food`` flag, set once the agent
    *says* ``take stale food from table`` and never cleared (so after dropping the food it still walks
    the with-food segments). The room test reads the true room, in PO too (as the original read the
    room header TextWorld printed). The original seeded every episode's agent with the same
    ``RandomState(1234)``; here the draws come from the episode's policy ``rng``.
    """
    memory = task.policy_memory.get("partial_walkthrough")
    if memory is None:
        rooms = BEHAVIOR_ROOM_SETS[0 if rng.random() < BEHAVIOR_FIRST_SET_P else 1]
        memory = {"rooms": rooms, "queue": [], "has_stale_food": False}
        task.policy_memory["partial_walkthrough"] = memory
    if memory["queue"]:
        action = memory["queue"].pop(0)
    elif rng.random() < walkthrough_p and task.room in memory["rooms"]:
        first, *rest = BEHAVIOR_WALKTHROUGH[task.room][memory["has_stale_food"]]
        memory["queue"] = rest
        action = first
    else:
        action = rng.choice(task.admissible_commands())
    if action == f"take {STALE} from table":
        memory["has_stale_food"] = True
    return action


def behavior_policy(task: TextNav, rng: random.Random) -> str:
    """The dataset policy: the original agent with walkthrough probability 0.9 (see above)."""
    return partial_walkthrough(task, rng, BEHAVIOR_WALKTHROUGH_P)


def behavior_code_policy(task: TextNav, rng: random.Random) -> str:
    """The original agent exactly as committed (walkthrough probability 0.1): nearly always fails."""
    return partial_walkthrough(task, rng, BEHAVIOR_CODE_WALKTHROUGH_P)


# --- the environment -----------------------------------------------------------------------------
class TextNav(Task):
    """The house; subclasses choose whether the room name and the inventory are shown."""

    version: ClassVar[str] = "2"
    observed: ClassVar[bool] = True
    anchors: ClassVar[Anchors] = Anchors(min=0.0, avg=0.26, max=1.0, source="paper Table 5")
    reward_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "optimal": optimal_policy,
        "behavior": behavior_policy,
        "behavior-code": behavior_code_policy,
    }
    chat_window: ClassVar[int | None] = None
    answer_example: ClassVar[str] = "Action: go west"

    def __init__(self, max_steps: int | str = DEFAULT_MAX_STEPS, **options: Any) -> None:
        super().__init__(**options)
        try:
            cap = int(max_steps)
            exact = float(max_steps) == cap
        except (TypeError, ValueError):
            cap, exact = 0, False
        if not exact or cap < 1:
            raise InvalidTaskOption(f"max_steps must be a positive whole number, not {max_steps!r}")
        self.max_steps = cap
        self.rng = random.Random(0)
        self.policy_memory: dict[str, Any] = {}  # per-episode state of scripted policies
        self._start_state(ROOMS[0])

    def _start_state(self, room: str) -> None:
        self.start = room
        self.room = room
        self.places: dict[str, Place] = dict(START_PLACES)
        self.open: dict[str, bool] = {"chest": False, "fridge": False}
        self.steps = 0
        self.invalid_steps = 0
        self.done = False
        self.outcome: str | None = None  # "won" | "ate stale food" | "out of moves"
        self._commands: list[str] | None = None

    # --- state -----------------------------------------------------------------------------------
    def objects_at(self, place: Place) -> list[str]:
        return [name for name in OBJECTS if self.places[name] == place]

    def admissible_commands(self) -> list[str]:
        """The commands that do something here and now, sorted alphabetically (cached per state)."""
        if self._commands is not None:
            return self._commands
        room = self.room
        commands = [f"go {d}" for d in EXITS[room]]
        carried = self.objects_at(CARRIED)
        if room in TABLE_ROOMS:
            commands += [f"take {name} from table" for name in self.objects_at(("table", room))]
            commands += [f"put {name} on table" for name in carried]
        commands += [f"take {name}" for name in self.objects_at(("floor", room))]
        container = ROOM_CONTAINER.get(room)
        if container is not None:
            if self.open[container]:
                commands.append(f"close {container}")
                commands += [f"take {name} from {container}" for name in self.objects_at(("in", container))]
                commands += [f"insert {name} into {container}" for name in carried]
            else:
                commands.append(f"open {container}")
        commands += [f"drop {name}" for name in carried]
        commands += [f"eat {name}" for name in carried if name in FOODS]
        self._commands = sorted(commands)
        return self._commands

    def candidate_actions(self) -> list[str] | None:
        """The admissible commands now (the observation lists them): a value-guided local agent with
        ``rerank`` ranks whole commands, so a command's value is scored once, not token by token."""
        return list(self.admissible_commands())

    def describe_room(self) -> str:
        """What is here: furniture, visible objects and exits. Never names the room."""
        room = self.room
        parts = []
        if room in TABLE_ROOMS:
            on_table = self.objects_at(("table", room))
            shown = f"On the table you see {_listing(on_table)}." if on_table else "The table is empty."
            parts.append(f"You see a table. {TABLE_LOOK[room]} {shown}")
        container = ROOM_CONTAINER.get(room)
        if container is not None:
            if self.open[container]:
                inside = self.objects_at(("in", container))
                shown = (
                    f"The {container} contains {_listing(inside)}."
                    if inside
                    else f"The {container} is empty."
                )
                parts.append(f"You see an open {container}. {shown}")
            else:
                parts.append(f"You see a closed {container}.")
        on_floor = self.objects_at(("floor", room))
        if on_floor:
            parts.append(f"On the floor you see {_listing(on_floor)}.")
        parts.append(describe_exits(room))
        return " ".join(parts)

    def describe_state(self) -> str:
        lines = []
        if self.observed:
            lines.append(f"You are in the {self.room}.")
        lines.append(self.describe_room())
        if self.observed:
            carried = self.objects_at(CARRIED)
            lines.append(
                f"You are carrying: {_listing(carried)}." if carried else "You are carrying nothing."
            )
        lines.append(f"Admissible commands: {', '.join(self.admissible_commands())}")
        return "\n".join(lines)

    # --- the environment -------------------------------------------------------------------------
    def setup(self, index: int) -> str:
        self.policy_memory = {}
        self._start_state(ROOMS[index % len(ROOMS)])
        return f"{OBJECTIVE}\n{self.describe_state()}"

    def step(self, action: str | None) -> StepResult:
        if self.done:
            raise RuntimeError("step() called on a finished text-nav episode")
        self.steps += 1
        invalid = action not in self.admissible_commands()
        if invalid:
            self.invalid_steps += 1
            feedback = INVALID
        else:
            assert action is not None
            feedback = self._apply(action)
        reward = 0.0
        if self.places[STALE] == ("in", "fridge") and not self.open["fridge"]:
            self.done, self.outcome, reward = True, "won", 1.0
            observation = f"{feedback}\nThe stale food is in the closed fridge. You won!"
        elif self.places[STALE] == EATEN:
            self.done, self.outcome = True, "ate stale food"
            observation = f"{feedback}\nYou lost!"
        elif self.steps >= self.max_steps:
            self.done, self.outcome = True, "out of moves"
            observation = f"{feedback}\nYou are out of moves."
        else:
            observation = f"{feedback}\n{self.describe_state()}"
        info: dict[str, Any] = {"room": self.room, "steps": self.steps}
        if self.outcome is not None:
            info["outcome"] = self.outcome
        cut = self.outcome == "out of moves"  # the step cap truncates; winning or eating terminates
        return StepResult(observation, reward, self.done and not cut, invalid, info, truncated=cut)

    def _apply(self, command: str) -> str:
        """Carry out an admissible command; return TextWorld-like feedback."""
        self._commands = None
        verb, _, rest = command.partition(" ")
        if verb == "go":
            self.room = EXITS[self.room][rest]
            return f"You go {rest}."
        if verb in ("open", "close"):
            self.open[rest] = verb == "open"
            return f"You {verb} the {rest}."
        if verb == "take":
            name, _, source = rest.partition(" from ")
            self.places[name] = CARRIED
            return f"You take the {name} from the {source}." if source else f"You pick up the {name}."
        if verb == "put":
            name = rest.removesuffix(" on table")
            self.places[name] = ("table", self.room)
            return f"You put the {name} on the table."
        if verb == "insert":
            name, _, container = rest.partition(" into ")
            self.places[name] = ("in", container)
            return f"You put the {name} into the {container}."
        if verb == "drop":
            self.places[rest] = ("floor", self.room)
            return f"You drop the {rest} on the floor."
        assert verb == "eat", command
        self.places[rest] = EATEN
        return "You eat the stale food. It was rotten." if rest == STALE else f"You eat the {rest}. Not bad."

    def parse(self, raw: str) -> Parsed:
        """The admissible command the reply names, by the shared policy (``lmrl.parsing``).

        Candidates are the admissible commands, read with articles and a few synonyms (``pick up``/
        ``grab`` -> take; ``go/move/walk/head/travel [to] west[ward]`` -> ``go west``; ``put/place/insert
        X in/into/inside C`` -> ``insert X into C``; ``put/place/set X on/onto table`` -> ``put X on
        table``; ``take X`` = the only way to take X here). A whole answer may be a bare direction
        (``west``, ``w``). A well-formed command that is not admissible now is ``not-allowed``.
        """
        admissible = self.admissible_commands()
        exact = raw.strip().lower()
        if exact in admissible:  # the common case (scripted policies, well-behaved models)
            return exact
        return read_action(
            raw, markers=_MARKERS, find=self._find_commands, whole=self._whole_command, max_chars=20_000
        )

    def _find_commands(self, text: str) -> list[Span]:
        admissible = self.admissible_commands()
        spans = [Span(m.start(), m.end(), command_of(m, admissible)) for m in _COMMAND.finditer(text)]
        return [span for span in non_overlapping(spans) if span.action in admissible]

    def _whole_command(self, text: str) -> Parsed | None:
        """A whole answer: a bare direction, or a line that starts with a command (refused as
        ``not-allowed`` when that command is not admissible now)."""
        admissible = self.admissible_commands()
        lowered = _words(text)
        if lowered in _BARE_DIRECTION:
            command = _BARE_DIRECTION[lowered]
            return command if command in admissible else Invalid("not-allowed", command)
        if _FILTERED.fullmatch(lowered):
            return Invalid("not-allowed", lowered)
        found = _COMMAND.match(text)
        if found is None:
            return None
        command = command_of(found, admissible)
        if command not in admissible:
            return Invalid("not-allowed", command)
        return command if found.end() == len(text) else None

    @property
    def success(self) -> bool:
        return self.outcome == "won"

    def episode_info(self) -> dict[str, Any]:
        kind, where = self.places[STALE]
        return {
            "start_room": self.start,
            "final_room": self.room,
            "outcome": self.outcome,
            "stale_food": f"{kind} {where}".strip(),
            "stale_food_eaten": self.places[STALE] == EATEN,
            "steps": self.steps,
            "invalid_steps": self.invalid_steps,
            "optimal_steps": len(walkthrough(self.start)),
        }

    def options(self) -> dict[str, Any]:
        return {"max_steps": self.max_steps}

    def system_prompt(self) -> str:
        if self.observed:
            seen = (
                "After each command you are told what happened, which room you are in, what you see there "
                "(furniture, objects, exits), what you are carrying, and the admissible commands."
            )
        else:
            seen = (
                "The room you are in and what you carry are hidden: after each command you are told only "
                "what happened, what you see (furniture, objects, exits) and the admissible commands. "
                "Use the history of your commands and observations to work out where you are."
            )
        return (
            "You are playing a text adventure in a house with eight rooms: bedroom, office, bathroom, living "
            "room, kitchen, dining room, garden and backyard, connected by exits to the north, south, east "
            f"and west.\n{OBJECTIVE} The fridge is closed at the start; you win once the stale food is in "
            "the fridge and the fridge is closed again (reward 1, the episode ends). Eating the stale "
            f"food loses the game (reward 0, the episode ends). Every other command gives reward 0. {seen}\n"
            f"You have {self.max_steps} commands; a command that is not admissible does nothing but still "
            "uses one up.\n"
            "Reply with exactly one of the admissible commands, e.g. go west, take stale food from table, "
            "open fridge, insert stale food into fridge, close fridge. " + self.final_line_instruction()
        )


@register_task
class TextNavFO(TextNav):
    name: ClassVar[str] = "textnav-fo"
    description: ClassVar[str] = (
        "Text-Nav house, fully observed: put the stale food in the fridge; room and items shown."
    )
    observed: ClassVar[bool] = True
    text_window: ClassVar[int | None] = 1  # the latest observation holds the paper's four-part FO state


@register_task
class TextNavPO(TextNav):
    name: ClassVar[str] = "textnav-po"
    description: ClassVar[str] = (
        "Text-Nav house, partially observed: put the stale food in the fridge; room, items hidden."
    )
    observed: ClassVar[bool] = False
    text_window: ClassVar[int | None] = None  # the whole episode: the agent must infer where it is
