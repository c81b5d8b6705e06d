"""Chess (LMRL-Gym §4.4): play White against Stockfish from the standard start position.

Rules, as in the original ``llm_rl_scripts/chess/env/env.py`` except where marked:

* **Turns.** python-chess holds the rules. The agent plays White; each legal agent move is answered
  by the opponent (Black: Stockfish over UCI, through ``lmrl.engines.EnginePool``) within the same
  step, so every observation shows White to move.
* **Rewards.** +1 for the agent's move that checkmates; -1 when the opponent's reply checkmates the
  agent; 0 for every other legal move, including those that end the game in a draw. Games end as the
  original's ``board.is_game_over()`` decides: checkmate, stalemate, insufficient material, the
  75-move rule, fivefold repetition (claimable draws, threefold and fifty moves, are not claimed). The
  original's docstring promised 0.5 for a draw; its code gave 0, and so do we. Stockfish itself scores
  positions past the fifty-move mark as draws, so beyond it an engine player may move aimlessly (even
  give up material) until the 75-move rule ends the game.
* **Illegal moves.** An illegal, ambiguous or unreadable move costs -1, leaves the board unchanged and
  does not end the game: the agent must move again (``invalid=True`` on that turn).
* **Cap.** 400 agent actions, illegal attempts included. The 400th action, if legal, still gets the
  opponent's reply (which may end the game); then the episode ends unfinished: result ``"*"``,
  termination ``"max_actions"``, reward 0 for that step unless the game ended. Returns therefore lie in
  [-400, 1]. (The original checked ``num_moves_made > max_moves`` after the step, which allowed 401
  actions; the paper's min anchor -401, kept for normalization, counts 400 illegal moves plus a loss.)
* **Moves.** SAN (``Nf3``, ``exd5``, ``O-O``, ``e8=Q``) as in the paper; square to square (``g1f3``,
  ``g1-f3``, ``g1 to f3``, ``e7e8q``) and words (``Knight to f3``, ``pawn takes d5``, ``castle
  kingside``) are accepted too, and each step's info records which the agent used (``notation``:
  ``san``, ``uci`` or ``words``) and the move in SAN and UCI. ``parse`` reads the reply by the shared
  policy (``lmrl.parsing``); the candidates are the legal moves, however written: any letter case
  (``NF3``, ``E4``), figurines (``♘f3``), move numbers (``1. e4``, ``12...Nf6``), check marks and
  annotations, the paper's spaced characters (``N f 3``) as a whole answer. A longer move expression
  hides the squares inside it (``Nf3 (g1 to f3)`` is one move), and a bare square used as a place
  (``controls d4``, ``the e5 square``, ``my e4 pawn``) is not a pawn move. The canonical action is the
  move in SAN (the paper's action text). A well-formed move that is not legal is refused as
  ``illegal`` (``ambiguous`` for ``Nd2`` when two knights can go there) and costs -1.

**Opponent strength (why our setting differs from the paper's).** The original passed ``UCI_Elo=1200``
to Stockfish 15.1 but never set ``UCI_LimitStrength``, and Stockfish ignores ``UCI_Elo`` without it
(it also rejects values below its floor of 1350), so the paper's "Elo 1200" opponent was full-strength
Stockfish at 100 ms per move. We set strength explicitly and record it in the run manifest:

* ``opponent_elo`` (default **1350**, Stockfish 15.1's ``UCI_Elo`` floor: its weakest calibrated setting
  and the nearest to the nominal 1200) sends ``UCI_LimitStrength=true`` and ``UCI_Elo``. Stockfish turns
  ``UCI_Elo`` into a fractional Skill Level, ``level = ((elo - 1346.6) / 143.4) ** (1 / 0.806)``, so
  ``Skill Level 0`` is itself about Elo 1347: no Skill Level is weaker than ``UCI_Elo 1350``. For Elo
  below 1350 we therefore play ``UCI_Elo 1350`` and replace each engine move, with probability
  ``p = (1350 - elo) / 1100``, by a uniformly random legal move (800 -> p = 0.5, 250 -> p = 1, a random
  mover). This mapping is monotone but not calibrated: Elo labels below 1350 are nominal.
  ``opponent_elo="max"`` is full strength (also the value for ``scripted/optimal``).
* ``opponent_skill`` (0..20) sets Stockfish's ``Skill Level`` instead (exclusive with ``opponent_elo``).
* ``opponent_time`` (default **0.1** s, the paper's 100 ms) and ``opponent_depth`` limit each search
  (both given: whichever comes first). With strength limiting on, Stockfish 15.1 picks its move when
  iterative deepening reaches depth ``1 + int(level)`` (depth 1 at Elo 1350, 3 at Elo 1600) and later
  iterations do not change it, so e.g. ``opponent_depth=5`` plays nearly the same opponent (only the
  hash contents differ) many times faster and independently of machine load.
* The engine's strength limiter draws from a clock-seeded generator, so games against a limited
  opponent are not reproducible move for move; our own random choices come from the episode seed.

Scripted policies: ``random`` (a uniformly random legal move), ``optimal`` (Stockfish at full strength
as the agent) and ``behavior`` (the paper's dataset generator: Stockfish at an Elo drawn uniformly from
[800, 1600] per game, mapped as above, so 800..1349 mixes in random moves). Engine policies search under
the same limit as the opponent.

Observations, two renderings of the same history:

* ``chat``: what happened (your move, Black's reply, an illegal-move notice or the result), a labelled
  board (White upper case), ``FEN: ...``, the moves so far in SAN, and the legal moves in SAN when
  option ``show_legal_moves`` is true (default false: the paper's agent got no list, and its
  illegal-move rate is one of the measured quantities). Chat agents see only the current observation
  (``chat_window = 1``): it carries the whole state, and prompts stay short over 400-action games.
* ``text`` (the paper's form): only the current board (``text_window = 1``), as the FEN with every
  character separated by a space (the FEN's own spaces become triple spaces); actions are written the
  same way (``N f 3``). ``render`` derives it from the ``FEN:`` line of the chat observation.

Engines: when the runner drives the task, ``open_shared`` gives all episodes one ``EnginePool`` of
``engines`` processes (default ``min(8, cpu_count)``); a missing Stockfish makes ``lmrl run`` exit 2
with an install hint. A task used on its own (``shared is None``) opens a one-process pool on first use
and closes it in ``aclose``. ``step`` cannot reach the engine; the runner always calls ``astep``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, ClassVar

import chess
import chess.engine

from lmrl.engines import EngineFailure, EnginePool, engine_name, find_stockfish
from lmrl.options import flag_option, int_option
from lmrl.parsing import Invalid, Parsed, Span, non_overlapping, read_action
from lmrl.task import (
    Anchors,
    InvalidTaskOption,
    Policy,
    Segment,
    StepResult,
    Style,
    Task,
    TaskUnavailable,
)
from lmrl.tasks.registry import register_task

MAX_ACTIONS = 400
ELO_FLOOR, ELO_CEILING = 1350, 2850  # Stockfish 15.1's UCI_Elo range
RANDOM_MOVER_ELO = 250  # the nominal Elo of a purely random mover in our below-floor mapping
DEFAULT_ELO = ELO_FLOOR
DEFAULT_TIME = 0.1  # seconds per engine move, as in the paper
DEFAULT_ENGINE_TIMEOUT = 30.0  # seconds an engine may take beyond the search limit before it counts as hung
BEHAVIOR_ELO = (800, 1600)  # the paper's dataset: White's Elo drawn uniformly per game


# --- engine strength -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Strength:
    """How an engine player plays: an Elo (limited strength), a Skill Level, or neither (full strength)."""

    elo: int | None = None
    skill: int | None = None

    @property
    def uci_options(self) -> dict[str, Any]:
        if self.elo is not None:
            return {"UCI_LimitStrength": True, "UCI_Elo": max(self.elo, ELO_FLOOR)}
        if self.skill is not None:
            return {"Skill Level": self.skill}
        return {}

    @property
    def random_move_p(self) -> float:
        """The chance of a uniformly random legal move instead of the engine's (Elo below the floor)."""
        if self.elo is None or self.elo >= ELO_FLOOR:
            return 0.0
        return (ELO_FLOOR - self.elo) / (ELO_FLOOR - RANDOM_MOVER_ELO)

    def describe(self) -> dict[str, Any]:
        return {
            "elo": self.elo,
            "skill": self.skill,
            "uci_options": self.uci_options,
            "random_move_p": round(self.random_move_p, 6),
        }


FULL_STRENGTH = Strength()


def _seconds_option(name: str, value: Any, low: float = 0.0) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidTaskOption(f"{name} must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= low:
        raise InvalidTaskOption(f"{name} must be a number of seconds above {low:g}, not {value!r}")
    return seconds


def opponent_strength(elo: Any = None, skill: Any = None) -> Strength:
    """Validate ``opponent_elo`` / ``opponent_skill`` (default: Elo 1350)."""
    if elo is not None and skill is not None:
        raise InvalidTaskOption("give opponent_elo or opponent_skill, not both")
    if skill is not None:
        return Strength(skill=int_option("opponent_skill", skill, 0, 20))
    if elo is None:
        return Strength(elo=DEFAULT_ELO)
    if isinstance(elo, str) and elo.strip().lower() in ("max", "full"):
        return FULL_STRENGTH
    try:
        return Strength(elo=int_option("opponent_elo", elo, RANDOM_MOVER_ELO, ELO_CEILING))
    except InvalidTaskOption:
        raise InvalidTaskOption(
            f"opponent_elo must be an integer from {RANDOM_MOVER_ELO} to {ELO_CEILING} or 'max', not {elo!r}"
        ) from None


def search_limit(time: Any = None, depth: Any = None) -> tuple[float | None, int | None]:
    """Validate ``opponent_time`` / ``opponent_depth`` (default: 0.1 s, no depth limit)."""
    depth_value = None if depth is None else int_option("opponent_depth", depth, 1, 100)
    if time is None:
        return (DEFAULT_TIME if depth_value is None else None), depth_value
    return _seconds_option("opponent_time", time), depth_value


def pool_options(options: dict[str, Any]) -> tuple[int, float]:
    """Validate ``engines`` (pool size) and ``engine_timeout`` from raw task options."""
    engines = options.get("engines")
    size = min(8, os.cpu_count() or 1) if engines is None else int_option("engines", engines, 1, 256)
    timeout = options.get("engine_timeout")
    seconds = DEFAULT_ENGINE_TIMEOUT if timeout is None else _seconds_option("engine_timeout", timeout)
    return size, seconds


# --- moves from free text ------------------------------------------------------------------------
# Figurines, the multiplication sign and arrows/dashes, each replaced by one character so that spans
# found in the translated text are spans of the original (a pawn figurine is just dropped: a space).
_SAME_LENGTH = str.maketrans(
    {
        **dict.fromkeys("♔♚", "K"),
        **dict.fromkeys("♕♛", "Q"),
        **dict.fromkeys("♖♜", "R"),
        **dict.fromkeys("♗♝", "B"),
        **dict.fromkeys("♘♞", "N"),
        **dict.fromkeys("♙♟", " "),
        "×": "x",
        **dict.fromkeys("–—→⟶", "-"),
    }
)
_SQ = r"[a-hA-H][1-8]"
_B = r"(?<![A-Za-z0-9])"  # a move starts and ends at a word boundary
_E = r"(?![A-Za-z0-9])"
_PIECE_WORDS = {"king": chess.KING, "queen": chess.QUEEN, "rook": chess.ROOK, "bishop": chess.BISHOP,
                "knight": chess.KNIGHT, "pawn": chess.PAWN}  # fmt: skip
# "Knight to f3", "the knight from g1 to f3", "pawn takes d5", "queen captures the rook on h7".
_WORDS = re.compile(
    rf"{_B}(?:(?:the|my|a)\s+)?(?P<piece>king|queen|rook|bishop|knight|pawn)"
    rf"(?:\s+(?:on|from)\s+(?P<source>{_SQ}))?"
    r"\s+(?:(?P<capture>takes|captures|x)\s+(?:on\s+)?(?:(?:the|a)\s+(?:pawn|knight|bishop|rook|queen)\s+on\s+)?"
    r"|(?:to|goes\s+to|moves\s+to|-+>?)\s+(?:the\s+)?)"
    rf"(?P<target>{_SQ}){_E}",
    re.IGNORECASE,
)
# Square to square: "g1f3", "g1-f3", "g1 to f3", "e4xd5", "Ng1-f3", "e7e8q", "e7-e8=Q".
_COORDINATES = re.compile(
    rf"{_B}(?P<letter>[KQRBNP])?(?P<source>{_SQ})(?:\s*(?:-+>?|x|:)\s*|\s+to\s+|)(?P<target>{_SQ})"
    rf"(?:=?(?P<promotion>[qrbnQRBN]))?{_E}"
)
_CASTLE = re.compile(
    rf"{_B}(?:(?P<long>[O0o]-[O0o]-[O0o])|[O0o]-[O0o]"
    r"|castl(?:e|es|ing)\s+(?:on\s+the\s+)?(?:(?P<q>queen'?s?[\s-]?side|long)|king'?s?[\s-]?side|short)"
    r"|(?:(?P<q2>queen'?s?[\s-]?side|long)|king'?s?[\s-]?side|short)\s+castl(?:e|es|ing))"
    r"(?![A-Za-z0-9-])",
    re.IGNORECASE,
)
_SAN = re.compile(rf"{_B}[KQRBNkqrbn]?[a-hA-H]?[1-8]?[xX:]?[a-hA-H][1-8](?:=?[QRBNqrbn])?{_E}")
# A bare square written as a noun, not a pawn move: "controls d4", "the e5 square", "my e4 pawn".
_SQUARE_BEFORE = re.compile(
    r"(?:\b(?:on|at|to|toward|towards|from|of|over|into|onto|via|through|against|near|around|behind|the|"
    r"control|controls|controlling|attack|attacks|attacking|defend|defends|defending|guard|guards|"
    r"protect|protects|protecting|target|targets|targeting|cover|covers|covering|eye|eyes|eyeing|"
    r"occupy|occupies|hit|hits|pressure|reach|reaches|square|weak|weakens|outpost)\s+)$",
    re.IGNORECASE,
)
_SQUARE_AFTER = re.compile(
    r"[\s-]*(?:squares?|pawns?|knight|bishop|rook|queen|king|file|diagonal)\b", re.IGNORECASE
)
_STRICT_SAN = re.compile(r"[KQRBN]?[a-h]?[1-8]?x?[a-h][1-8](?:=[QRBN])?")
_MOVE_NUMBER = re.compile(r"^\d+\s*\.+\s*")
_ANNOTATION = re.compile(r"[!?+#]+$")
_SPELLED = re.compile(r"\S(?: \S)+")  # the paper's spaced action form: "N f 3", "e 2 e 4", "O - O"
_MARKERS = ("move", "action", "answer")


@dataclass(frozen=True, slots=True)
class ParsedMove:
    """A move read from agent text: canonical text (SAN if legal, else as written), notation, legality."""

    text: str
    notation: str  # "san", "uci" (square to square) or "words" ("knight to f3")
    move: chess.Move | None  # None: well-formed but not a (single) legal move here
    reason: str | None = None  # why not: "illegal" or "ambiguous"
    options: tuple[str, ...] = ()  # for "ambiguous": the legal moves it could mean, in SAN

    def refusal(self) -> Invalid:
        shown = f"{self.text}: {' or '.join(self.options)}" if self.options else self.text
        return Invalid(self.reason or "illegal", shown)


def _pick(board: chess.Board, text: str, notation: str, moves: list[chess.Move]) -> ParsedMove:
    """The one legal move among ``moves``, or why there is none (none: illegal; several: ambiguous)."""
    if len(moves) == 1:
        return ParsedMove(board.san(moves[0]), notation, moves[0])
    if moves:
        return ParsedMove(text, notation, None, "ambiguous", tuple(sorted(board.san(m) for m in moves)))
    return ParsedMove(text, notation, None, "illegal")


def _san_variants(token: str) -> list[str]:
    """Readings of a SAN token, as written first: ``NF3`` -> Nf3, ``E4`` -> e4, ``BXC3`` -> Bxc3, bxc3."""
    token = token.replace(":", "x").replace("X", "x")
    promotion = re.search(r"=?[QRBNqrbn]$", token) if re.search(r"[1-8]=?[QRBNqrbn]$", token) else None
    body, tail = (token[: promotion.start()], "=" + token[-1].upper()) if promotion else (token, "")
    variants = [body + tail]
    if body[0] in "KQRBNkqrbn" and len(body) > 2:
        variants.append(body[0].upper() + body[1:].lower() + tail)
    variants.append(body.lower() + tail)
    return list(dict.fromkeys(variants))


def _read_san(board: chess.Board, token: str) -> ParsedMove:
    ambiguous: ParsedMove | None = None
    for text in _san_variants(token):
        try:
            move = board.parse_san(text)
        except chess.AmbiguousMoveError:
            if ambiguous is None:
                legal = [m for m in board.legal_moves if _san_matches(board, text, m)]
                ambiguous = _pick(board, text, "san", legal)
            continue
        except ValueError:
            continue
        return ParsedMove(board.san(move), "san", move)
    if ambiguous is not None:
        return ambiguous
    variants = _san_variants(token)
    written = next((v for v in variants if _STRICT_SAN.fullmatch(v)), variants[0])
    return ParsedMove(written, "san", None, "illegal")


def _san_matches(board: chess.Board, san: str, move: chess.Move) -> bool:
    """Whether ``move`` fits an ambiguous SAN (``Nd2``: a knight move to d2)."""
    letter = san[0] if san[0] in "KQRBN" else "P"
    target = re.findall(r"[a-h][1-8]", san)[-1]
    piece = board.piece_at(move.from_square)
    return (
        piece is not None and piece.symbol().upper() == letter and chess.square_name(move.to_square) == target
    )


def _read_match(board: chess.Board, kind: str, found: re.Match[str]) -> ParsedMove:
    text = " ".join(found.group().split())
    legal = list(board.legal_moves)
    if kind == "castle":
        long = bool(found["long"] or found["q"] or found["q2"])
        side = [m for m in legal if board.is_castling(m) and board.is_queenside_castling(m) == long]
        return _pick(board, "O-O-O" if long else "O-O", "san", side)
    if kind == "san":
        return _read_san(board, found.group())
    source = chess.parse_square(found["source"].lower()) if found["source"] else None
    target = chess.parse_square(found["target"].lower())
    moves = [m for m in legal if m.to_square == target and (source is None or m.from_square == source)]
    if kind == "coordinates":
        text = text.lower()
        if found["letter"]:
            kind_of = chess.Piece.from_symbol(found["letter"]).piece_type
            moves = [m for m in moves if board.piece_type_at(m.from_square) == kind_of]
        if found["promotion"]:
            promotion = chess.Piece.from_symbol(found["promotion"].lower()).piece_type
            moves = [m for m in moves if m.promotion == promotion]
        return _pick(board, text, "uci", moves)
    piece = _PIECE_WORDS[found["piece"].lower()]
    moves = [m for m in moves if board.piece_type_at(m.from_square) == piece]
    if found["capture"]:
        moves = [m for m in moves if board.is_capture(m)]
    return _pick(board, text, "words", moves)


_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("words", _WORDS),
    ("coordinates", _COORDINATES),
    ("castle", _CASTLE),
    ("san", _SAN),
)


def _is_square_noun(text: str, found: re.Match[str]) -> bool:
    """A bare square ("d4") that the words around it make a place, not a pawn move."""
    if len(found.group()) != 2:
        return False
    return bool(_SQUARE_BEFORE.search(text[max(0, found.start() - 30) : found.start()])) or bool(
        _SQUARE_AFTER.match(text, found.end())
    )


def move_spans(board: chess.Board, text: str) -> list[tuple[Span, ParsedMove]]:
    """Every move expression in ``text`` (legal or not) with what it reads as, longest first where
    they overlap (``Knight to f3`` is one move, not also ``f3``)."""
    translated = text.translate(_SAME_LENGTH)
    found: dict[tuple[int, int], ParsedMove] = {}
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(translated):
            if kind == "san" and _is_square_noun(translated, match):
                continue
            found.setdefault(match.span(), _read_match(board, kind, match))
    spans = [Span(start, end, parsed.text) for (start, end), parsed in found.items()]
    return [(span, found[span.start, span.end]) for span in non_overlapping(spans)]


def read_move(board: chess.Board, text: str) -> ParsedMove | None:
    """``text`` read as exactly one move (move number, check marks and annotations allowed), or
    ``None`` when it is not one move expression."""
    text = _ANNOTATION.sub("", _MOVE_NUMBER.sub("", text.strip().translate(_SAME_LENGTH).strip()))
    if _SPELLED.fullmatch(text):
        text = text.replace(" ", "")
    for kind, pattern in _PATTERNS:
        found = pattern.fullmatch(text)
        if found:
            return _read_match(board, kind, found)
    return None


class MoveReader:
    """Reads one reply against one position by the shared policy; remembers how each move was written."""

    def __init__(self, board: chess.Board) -> None:
        self.board = board
        self.seen: dict[str, ParsedMove] = {}  # legal moves found, by SAN
        self.refused: list[ParsedMove] = []  # well-formed moves refused as whole answers

    def find(self, text: str) -> list[Span]:
        spans = []
        for span, parsed in move_spans(self.board, text):
            if parsed.move is not None:
                self.seen.setdefault(span.action, parsed)
                spans.append(span)
        return spans

    def whole(self, text: str) -> Parsed | None:
        """A whole answer that is one move; a line starting with a well-formed move that is not legal
        here is refused (``illegal``, or ``ambiguous`` for ``Nd2`` when two knights can go there)."""
        parsed = read_move(self.board, text)
        exact = parsed is not None
        if parsed is None and text.split():
            parsed = read_move(self.board, text.split()[0].rstrip(",;:"))
        if parsed is None:
            return None
        if parsed.move is None:
            self.refused.append(parsed)
            return parsed.refusal()
        if not exact:
            return None
        self.seen.setdefault(parsed.text, parsed)
        return parsed.text


def parse_move(board: chess.Board, raw: str) -> tuple[Parsed, ParsedMove | None]:
    """The move a reply names (SAN) or why it names none, by the shared policy; with it the move as
    read (how it was written), or the well-formed move refused as illegal or ambiguous."""
    reader = MoveReader(board)
    parsed = read_action(raw, markers=_MARKERS, find=reader.find, whole=reader.whole, max_chars=20_000)
    if isinstance(parsed, str):
        return parsed, reader.seen.get(parsed)
    return parsed, next((m for m in reader.refused if m.refusal() == parsed), None)


# --- observations --------------------------------------------------------------------------------
def board_diagram(board: chess.Board) -> str:
    """The board with rank and file labels, White at the bottom, White pieces upper case, "." empty."""
    files = "  a b c d e f g h"
    rows = []
    for rank in range(7, -1, -1):
        cells = []
        for file in range(8):
            piece = board.piece_at(chess.square(file, rank))
            cells.append(piece.symbol() if piece else ".")
        rows.append(f"{rank + 1} {' '.join(cells)} {rank + 1}")
    return "\n".join([files, *rows, files])


def move_list(sans: list[str], first_move_number: int = 1) -> str:
    """``["e4", "e5", "Nf3"]`` -> ``"1. e4 e5 2. Nf3"`` (White moves first)."""
    parts = []
    for i, san in enumerate(sans):
        if i % 2 == 0:
            parts.append(f"{first_move_number + i // 2}.")
        parts.append(san)
    return " ".join(parts)


def spaced(text: str) -> str:
    """The paper's encoding: every character separated by a space (a space becomes three)."""
    return " ".join(text)


_FEN_LINE = re.compile(r"^FEN: (.+)$", re.MULTILINE)


def text_observation(observation: str) -> str:
    """The paper's text form of a chat observation: its FEN, spaced out."""
    found = _FEN_LINE.search(observation)
    return spaced(found.group(1).strip()) if found else observation


_ENDINGS = {
    chess.Termination.CHECKMATE: "checkmate",
    chess.Termination.STALEMATE: "stalemate, a draw",
    chess.Termination.INSUFFICIENT_MATERIAL: "a draw by insufficient material",
    chess.Termination.SEVENTYFIVE_MOVES: "a draw by the 75-move rule",
    chess.Termination.FIVEFOLD_REPETITION: "a draw by fivefold repetition",
}


def describe_outcome(outcome: chess.Outcome) -> str:
    text = _ENDINGS.get(outcome.termination, outcome.termination.name.lower().replace("_", " "))
    if outcome.winner is chess.WHITE:
        text += ", you win"
    elif outcome.winner is chess.BLACK:
        text += ", you lose"
    return f"{text} ({outcome.result()})"


# --- scripted policies ---------------------------------------------------------------------------
def random_policy(task: Chess, rng: random.Random) -> str:
    return task.board.san(rng.choice(list(task.board.legal_moves)))


async def engine_san(task: Chess, strength: Strength, rng: random.Random) -> str:
    """The move an engine of ``strength`` plays for the agent, in SAN."""
    move = await task.engine_move(strength, rng, role="agent")
    return task.board.san(move)


def optimal_policy(task: Chess, rng: random.Random) -> Awaitable[str]:
    return engine_san(task, FULL_STRENGTH, rng)


def behavior_policy(task: Chess, rng: random.Random) -> Awaitable[str]:
    """The paper's dataset policy: Stockfish at an Elo drawn uniformly from [800, 1600] per game."""
    if "behavior_elo" not in task.policy_state:
        task.policy_state["behavior_elo"] = rng.randint(*BEHAVIOR_ELO)
    return engine_san(task, Strength(elo=task.policy_state["behavior_elo"]), rng)


@contextlib.asynccontextmanager
async def shared_engines(options: dict[str, Any]) -> AsyncIterator[EnginePool]:
    """One engine pool for every episode of a run; ``TaskUnavailable`` when there is no engine."""
    size, timeout = pool_options(options)
    path = find_stockfish()
    async with EnginePool(size, path, move_timeout=timeout) as pool:
        try:
            await pool.check()
        except EngineFailure as error:
            raise TaskUnavailable(f"{error}; install Stockfish or point STOCKFISH_PATH at it") from None
        yield pool


# --- the environment -----------------------------------------------------------------------------
@register_task
class Chess(Task):
    name: ClassVar[str] = "chess"
    version: ClassVar[str] = "2"
    description: ClassVar[str] = (
        "Play White against Stockfish from the start; SAN moves; +1 win, -1 loss, -1 per illegal move."
    )
    anchors: ClassVar[Anchors] = Anchors(
        min=-401.0, avg=0.21, max=1.0, source="paper Table 5; min = 400 illegal moves + loss"
    )
    reward_range: ClassVar[tuple[float, float]] = (-float(MAX_ACTIONS), 1.0)
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "optimal": optimal_policy,
        "behavior": behavior_policy,
    }
    text_window: ClassVar[int | None] = 1
    chat_window: ClassVar[int | None] = 1
    answer_example: ClassVar[str] = "Move: Nf3"
    # Example moves of the system prompt (each must make sense in the task's positions).
    san_examples: ClassVar[str] = "e4, Nf3, exd5, O-O or e8=Q"
    uci_example: ClassVar[str] = "g1f3"

    max_steps = MAX_ACTIONS

    def __init__(
        self,
        opponent_elo: Any = None,
        opponent_skill: Any = None,
        opponent_time: Any = None,
        opponent_depth: Any = None,
        show_legal_moves: Any = False,
        engines: Any = None,
        engine_timeout: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.opponent = opponent_strength(opponent_elo, opponent_skill)
        self.search_time, self.search_depth = search_limit(opponent_time, opponent_depth)
        self.limit = chess.engine.Limit(time=self.search_time, depth=self.search_depth)
        self.show_legal_moves = flag_option("show_legal_moves", show_legal_moves)
        self.engines, self.engine_timeout = pool_options(
            {"engines": engines, "engine_timeout": engine_timeout}
        )
        self._own_pool: EnginePool | None = None
        self.rng = random.Random(0)
        self._begin(chess.Board())

    # --- state -----------------------------------------------------------------------------------
    def _begin(self, board: chess.Board) -> str:
        self.board = board
        self.start_fen = board.fen()
        self.sans: list[str] = []  # the game's moves in SAN, both sides
        self.actions = 0  # agent actions so far, illegal ones included
        self.illegal_moves = 0
        self.done = False
        self.result = "*"
        self.termination: str | None = None
        self.policy_state: dict[str, Any] = {}  # per-game choices of scripted policies (behavior Elo, ε)
        self._game = object()  # engine requests of this game share a hash (see EnginePool)
        self._parsed: ParsedMove | None = None
        self._pending: dict[str, Any] = {}
        return self.observation(self.opening())

    def setup(self, index: int) -> str:
        """The standard start position (``index`` does not matter); ``self.rng`` drives our random choices."""
        return self._begin(chess.Board())

    def opening(self) -> str:
        return "A new game: you play White, Stockfish plays Black. Your move."

    def observation(self, headline: str) -> str:
        lines = [headline, board_diagram(self.board), f"FEN: {self.board.fen()}"]
        if self.sans:
            lines.append(f"Moves so far: {move_list(self.sans, chess.Board(self.start_fen).fullmove_number)}")
        if not self.done:
            if self.show_legal_moves:
                lines.append(
                    "Legal moves: " + " ".join(sorted(self.board.san(m) for m in self.board.legal_moves))
                )
            lines.append(f"You play White. Your move ({self.actions + 1} of at most {self.max_steps}).")
        return "\n".join(lines)

    # --- engines ---------------------------------------------------------------------------------
    @classmethod
    def open_shared(cls, options: dict[str, Any]) -> contextlib.AbstractAsyncContextManager[Any]:
        return shared_engines(options)

    async def engine_pool(self) -> EnginePool:
        """The run's shared pool, or (standalone) this task's own one-process pool, opened on first use."""
        if self.shared is not None:
            return self.shared
        if self._own_pool is None:
            self._own_pool = EnginePool(1, find_stockfish(), move_timeout=self.engine_timeout)
        return self._own_pool

    async def engine_move(self, strength: Strength, rng: random.Random, role: str) -> chess.Move:
        """A move for the side to move by an engine of ``strength`` (random with its random_move_p)."""
        if strength.random_move_p > 0 and rng.random() < strength.random_move_p:
            return rng.choice(list(self.board.legal_moves))
        pool = await self.engine_pool()
        return await pool.play(self.board, self.limit, options=strength.uci_options, game=(self._game, role))

    async def aclose(self) -> None:
        if self._own_pool is not None:
            pool, self._own_pool = self._own_pool, None
            await pool.aclose()

    # --- the rules -------------------------------------------------------------------------------
    def parse(self, raw: str) -> Parsed:
        """The move in SAN if legal here, else ``Invalid`` (``illegal``, ``ambiguous``, ``no-action``,
        ...). The move as read (notation, or the refused move) is kept for the ``step`` that follows."""
        parsed, self._parsed = parse_move(self.board, raw)
        return parsed

    def _resolve(self, action: str | None) -> ParsedMove | None:
        """The move ``step`` got: the one ``parse`` just read, else ``action`` read afresh. For ``None``:
        the well-formed move ``parse`` refused, if any (``None`` when the reply named no move)."""
        parsed, self._parsed = self._parsed, None
        if action is None:
            return parsed if parsed is not None and parsed.move is None else None
        if (
            parsed is None
            or parsed.text != action
            or parsed.move is None
            or not self.board.is_legal(parsed.move)
        ):
            _, parsed = parse_move(self.board, action)
        return parsed

    def _finish(self, outcome: chess.Outcome | None, info: dict[str, Any]) -> None:
        self.done = True
        self.result = outcome.result() if outcome else "*"
        self.termination = outcome.termination.name.lower() if outcome else "max_actions"
        info.update(result=self.result, termination=self.termination)

    def _capped(self, headline: str, info: dict[str, Any]) -> str:
        if self.actions < self.max_steps:
            return headline
        self._finish(None, info)
        return f"{headline} That was your action {self.max_steps}: the game stops here, unfinished (*)."

    def play_agent_action(self, action: str | None) -> StepResult | None:
        """The agent's half of a step. A finished step (illegal move, or a move that ends the game)
        comes back as a ``StepResult``; ``None`` means the move was played and Black must reply."""
        if self.done:
            raise RuntimeError("step() called on a finished chess episode")
        self.actions += 1
        parsed = self._resolve(action)
        if parsed is None or parsed.move is None:
            self.illegal_moves += 1
            info: dict[str, Any] = {"actions": self.actions, "illegal_move": action}
            if parsed is None:
                info["reason"] = "unparsable"
                headline = (
                    "Your reply gave no single move I could read. The position is unchanged (-1); "
                    f"move again and end with a line like `{self.answer_example}`."
                )
            else:
                info.update(illegal_move=parsed.text, reason=parsed.reason, notation=parsed.notation)
                why = (
                    f"ambiguous (it could be {' or '.join(parsed.options)}; say which)"
                    if parsed.reason == "ambiguous"
                    else "illegal"
                )
                headline = f"{parsed.text} is {why} here. The position is unchanged (-1); move again."
            headline = self._capped(headline, info)
            result = StepResult(self.observation(headline), -1.0, False, True, info, truncated=self.done)
            result.invalid_reason = parsed.reason if parsed is not None else None
            return result
        san = self.board.san(parsed.move)
        self.board.push(parsed.move)
        self.sans.append(san)
        self._pending = {
            "actions": self.actions,
            "move": san,
            "uci": parsed.move.uci(),
            "notation": parsed.notation,
        }
        outcome = self.board.outcome()
        if outcome is None:
            return None
        info = self._pending
        self._finish(outcome, info)
        reward = 1.0 if outcome.winner is chess.WHITE else 0.0
        return StepResult(
            self.observation(f"You played {san}: {describe_outcome(outcome)}."), reward, True, False, info
        )

    def play_opponent_move(self, move: chess.Move) -> StepResult:
        """Black's half of a step, after ``play_agent_action`` returned ``None``."""
        san = self.board.san(move)
        self.board.push(move)
        self.sans.append(san)
        info = self._pending
        info.update(opponent_move=san, opponent_uci=move.uci())
        headline = f"You played {info['move']}; Black replied {san}."
        outcome = self.board.outcome()
        reward = 0.0
        if outcome is not None:
            self._finish(outcome, info)
            reward = -1.0 if outcome.winner is chess.BLACK else 0.0
            headline = f"{headline[:-1]}: {describe_outcome(outcome)}."
            return StepResult(self.observation(headline), reward, True, False, info)
        headline = self._capped(headline, info)  # the action cap cuts the game: truncated
        return StepResult(self.observation(headline), reward, False, False, info, truncated=self.done)

    def step(self, action: str | None) -> StepResult:
        raise RuntimeError("chess steps need an engine: use astep")

    async def astep(self, action: str | None) -> StepResult:
        finished = self.play_agent_action(action)
        if finished is not None:
            return finished
        reply = await self.engine_move(self.opponent, self.rng, role="opponent")
        return self.play_opponent_move(reply)

    @property
    def success(self) -> bool:
        return self.result == "1-0"

    # --- records ---------------------------------------------------------------------------------
    def opponent_settings(self) -> dict[str, Any]:
        limit = {"time": self.search_time, "depth": self.search_depth}
        return {"engine": "stockfish", **self.opponent.describe(), "limit": limit}

    def episode_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "fen": self.board.fen(),
            "result": self.result,
            "termination": self.termination,
            "illegal_moves": self.illegal_moves,
            "actions": self.actions,
            "plies": len(self.board.move_stack),
            "opponent": self.opponent_settings(),
        }
        if self.policy_state:
            info["agent_policy"] = dict(self.policy_state)
        return info

    def options(self) -> dict[str, Any]:
        try:
            path: str | None = find_stockfish()
        except TaskUnavailable:
            path = None
        return {
            "opponent_elo": self.opponent.elo,
            "opponent_skill": self.opponent.skill,
            "opponent_time": self.search_time,
            "opponent_depth": self.search_depth,
            "opponent_uci_options": self.opponent.uci_options,
            "opponent_random_move_p": self.opponent.random_move_p,
            "show_legal_moves": self.show_legal_moves,
            "engines": self.engines,
            "engine_timeout": self.engine_timeout,
            "engine": {"path": path, "name": engine_name(path) if path else None},
        }

    # --- rendering -------------------------------------------------------------------------------
    def format_action(self, action: str) -> str:
        """Moves are written character by character in the text style ("N f 3")."""
        return spaced(action) if re.fullmatch(r"\S{1,10}", action) else action

    def render(self, history: list[Segment], style: Style) -> list[dict[str, str]] | str:
        if style == "text":
            history = [
                Segment("observation", text_observation(s.text)) if s.kind == "observation" else s
                for s in history
            ]
        return super().render(history, style)

    def goal(self) -> str:
        return (
            "You are playing chess as White against the Stockfish engine (Black), "
            "from the standard starting position."
        )

    def system_prompt(self) -> str:
        return (
            f"{self.goal()}\n"
            "Each turn you see what just happened, the board (rank 8 at the top, White's pieces in upper "
            "case K Q R B N P, Black's in lower case, '.' for an empty square), its FEN and the moves so far."
            "\nReply with one legal move for White in standard algebraic notation (SAN), for example "
            f"{self.san_examples}; UCI notation such as {self.uci_example} is accepted too.\n"
            "Rewards: +1 if you checkmate Black, -1 if Black checkmates you, 0 for a draw and for every "
            "other legal move. An illegal or unreadable move costs -1, leaves the position unchanged, and "
            f"you must move again. The game stops after {self.max_steps} of your replies, legal or not.\n"
            "You may think first. " + self.final_line_instruction()
        )
