"""Chess endgames (LMRL-Gym §4.5): checkmate a lone black king with White's king and Q, R, QR or RR.

The rules, rewards, 400-action cap, move format, observations and opponent are those of ``chess``
(see ``lmrl.tasks.chess.env``); only the start differs. Positions are random legal placements as in the
original ``large_piece_random_endgame``: the pieces on distinct squares drawn uniformly, kept if
``board.is_valid()`` (so neither king is attacked by the side not to move) and White, to move, is not
in check; we also drop the (rare) positions where the game is already over.

* ``positions="eval"`` (default): episode ``index`` plays one position of a fixed evaluation set,
  ``data/endgame_positions.jsonl``, like the paper's 645 "not trivially solvable" test positions. The
  index goes through ``lmrl.sampling.stratified_item`` with the material (Q, R, QR, RR) as category,
  so any run of the first N indices covers the four materials in proportion (indices 0-3: one each) and
  indices 0..644 play every position once; later passes reshuffle.
  The file is built once by ``python tools/build_endgame_positions.py`` (its header
  records the command, engine and analysis limit): per material, the positions with the longest forced
  mates Stockfish 15.1 finds at a fixed depth, balanced across the four materials and interleaved so
  any prefix (``--episodes 100``) is balanced too. The paper kept mates in >= 15 moves; K+Q vs K and the
  four-piece endings never need that many (their longest mates are about 10 and 7 moves), so we keep
  the longest per material instead of one global threshold. ``mate_in`` is the mate length Stockfish
  reports at that depth: an upper bound on the true distance to mate.
* ``positions="random"`` (training): a fresh position from the episode seed, material uniform over the
  four (or the one chosen), never one of the evaluation positions.
* ``material``: ``"all"`` (default) or one of ``Q``, ``R``, ``QR``, ``RR`` (restricts both sets).

Scripted policies: ``random``, ``optimal`` (Stockfish at full strength) and ``behavior``, the paper's
dataset mixture: per game an ε drawn uniformly from [0, 1]; each White move is a uniformly random legal
move with probability ε, else full-strength Stockfish's. (The paper gives no distribution for ε; with a
uniform one, games with a large ε last longer, so fewer than half of all moves come from the engine,
in line with the paper's 38%.)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import chess

from lmrl.sampling import stratified_item
from lmrl.task import Anchors, InvalidTaskOption, Policy
from lmrl.tasks.chess.env import Chess
from lmrl.tasks.chess.policies import engine_san, optimal_policy, random_policy
from lmrl.tasks.chess.strength import FULL_STRENGTH
from lmrl.tasks.registry import register_task

# Material code -> White's pieces besides the king (the original's "kQK", "kRK", "kQRK", "kRRK").
MATERIALS: dict[str, tuple[chess.PieceType, ...]] = {
    "Q": (chess.QUEEN,),
    "R": (chess.ROOK,),
    "QR": (chess.QUEEN, chess.ROOK),
    "RR": (chess.ROOK, chess.ROOK),
}
PIECE_NAMES = {chess.QUEEN: "queen", chess.ROOK: "rook"}
EVAL_PATH = Path(__file__).parent.parent / "data" / "endgame_positions.jsonl"
EVAL_SIZE = 645


def random_endgame(rng: random.Random, material: str) -> chess.Board:
    """A random legal position: White K + ``material`` vs a lone black king, White to move, not in check."""
    pieces = [chess.Piece(chess.KING, chess.BLACK), chess.Piece(chess.KING, chess.WHITE)]
    pieces += [chess.Piece(p, chess.WHITE) for p in MATERIALS[material]]
    while True:
        board = chess.Board(None)  # empty, White to move, no castling rights
        for piece, square in zip(pieces, rng.sample(chess.SQUARES, len(pieces)), strict=True):
            board.set_piece_at(square, piece)
        if board.is_valid() and not board.is_check() and not board.is_game_over():
            return board


def material_of(board: chess.Board) -> str | None:
    """The material code of a K+{Q,R,QR,RR} vs lone K position, else ``None``."""
    black = board.occupied_co[chess.BLACK]
    if chess.popcount(black) != 1 or not black & board.kings:
        return None
    white = [board.piece_type_at(s) for s in chess.SquareSet(board.occupied_co[chess.WHITE])]
    if white.count(chess.KING) != 1:
        return None
    letters = sorted((chess.piece_symbol(p).upper() for p in white if p != chess.KING), key="QRBNP".index)
    code = "".join(letters)
    return code if code in MATERIALS else None


@dataclass(frozen=True, slots=True)
class EndgamePosition:
    fen: str
    material: str
    mate_in: int  # moves; Stockfish's reported mate at the set's analysis depth


@lru_cache(maxsize=2)
def load_positions(path: str = str(EVAL_PATH)) -> tuple[EndgamePosition, ...]:
    """The evaluation positions of a JSONL file (the header record, with key ``header``, skipped)."""
    positions = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        if "fen" in record:
            positions.append(EndgamePosition(record["fen"], record["material"], int(record["mate_in"])))
    return tuple(positions)


def read_header(path: str | Path = EVAL_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        return json.loads(file.readline())["header"]


# --- scripted policies ---------------------------------------------------------------------------
async def behavior_policy(task: Endgames, rng: random.Random) -> str:
    """The paper's dataset policy: per game ε ~ U[0, 1]; each move random with probability ε, else
    full-strength Stockfish's."""
    if "epsilon" not in task.policy_state:
        task.policy_state["epsilon"] = rng.random()
    if rng.random() < task.policy_state["epsilon"]:
        return random_policy(task, rng)
    return await engine_san(task, FULL_STRENGTH, rng)


# --- the environment -----------------------------------------------------------------------------
@register_task
class Endgames(Chess):
    name: ClassVar[str] = "endgames"
    version: ClassVar[str] = "2"
    description: ClassVar[str] = (
        "Checkmate the lone black king with K+Q, K+R, K+Q+R or K+R+R against Stockfish; "
        "645 fixed hard positions."
    )
    anchors: ClassVar[Anchors] = Anchors(min=-1.0, avg=0.586, max=1.0, source="paper Table 5")
    # Only kings, queens and rooks: the prompt's examples are moves of those pieces. The final-line
    # example is a legal king move of the episode's start position (set by ``reset``), so it is valid
    # where the agent reads it and stays the same all episode (prompt prefixes are reused).
    answer_example: str = "Move: Kd2"
    san_examples: ClassVar[str] = "Kd2, Qh7, Rxa8 or Re8#"
    uci_example: ClassVar[str] = "e1d2"
    policies: ClassVar[dict[str, Policy]] = {
        "random": random_policy,
        "optimal": optimal_policy,
        "behavior": behavior_policy,
    }

    def __init__(self, positions: Any = "eval", material: Any = "all", **options: Any) -> None:
        material = material.upper() if isinstance(material, str) and material != "all" else material
        if positions not in ("eval", "random"):
            raise InvalidTaskOption(f"positions must be 'eval' or 'random', not {positions!r}")
        if material != "all" and material not in MATERIALS:
            raise InvalidTaskOption(f"material must be 'all' or one of Q, R, QR, RR, not {material!r}")
        self.positions = positions
        self.material = material
        self.materials = tuple(MATERIALS) if material == "all" else (material,)
        self.eval_set = tuple(p for p in load_positions() if p.material in self.materials)
        self._eval_fens = frozenset(p.fen for p in self.eval_set)
        self._eval_materials = tuple(p.material for p in self.eval_set)  # the strata of ``eval_item``
        self.start_material = self.materials[0]
        self.start_mate_in: int | None = None
        super().__init__(**options)

    def setup(self, index: int) -> str:
        """The evaluation position of episode ``index``, or (``positions="random"``) one drawn from the
        seeded ``self.rng``."""
        if self.positions == "eval":
            position = self.eval_set[self.eval_item(index)]
            board = chess.Board(position.fen)
            self.start_material, self.start_mate_in = position.material, position.mate_in
        else:
            while True:
                self.start_material = self.rng.choice(self.materials)
                board = random_endgame(self.rng, self.start_material)
                if board.fen() not in self._eval_fens:
                    break
            self.start_mate_in = None
        king_moves = sorted(
            board.san(m) for m in board.legal_moves if m.from_square == board.king(chess.WHITE)
        )
        self.answer_example = f"Move: {(king_moves or ['Kd2'])[0]}"
        return self._begin(board)

    def eval_item(self, index: int) -> int:
        """Which evaluation position (in ``eval_set``) episode ``index`` plays: stratified by material."""
        return stratified_item(index, self._eval_materials, salt=f"endgames/{self.version}")

    def opening(self) -> str:
        pieces = " and ".join(PIECE_NAMES[p] for p in MATERIALS[self.start_material])
        return (
            f"An endgame: White has king, {pieces} against the lone black king. You play White; "
            "checkmate to win. Your move."
        )

    def goal(self) -> str:
        return (
            "You are playing a chess endgame as White against the Stockfish engine (Black): your king and "
            "one or two heavy pieces (a queen, a rook, or two) against the lone black king. Checkmate it."
        )

    def episode_info(self) -> dict[str, Any]:
        info = super().episode_info()
        info.update(start_fen=self.start_fen, material=self.start_material, mate_in=self.start_mate_in)
        return info

    def options(self) -> dict[str, Any]:
        return {"positions": self.positions, "material": self.material, **super().options()}
