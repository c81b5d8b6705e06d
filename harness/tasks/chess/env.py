"""Chess (LMRL-Gym §4.4): play White against Stockfish from the standard start position.

Rules, as in the original ``llm_rl_scripts/chess/env/env.py`` except where marked:

* **Turns.** python-chess holds the rules. The agent plays White; each legal agent move is answered
  by the opponent (Black: Stockfish over UCI, through ``lmrl.tasks.chess.engines.EnginePool``) within
  the same step, so every observation shows White to move.
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
  ``g1 to f3``, ``e7e8q``) and words (``Knight to f3``, ``castle kingside``) are accepted too, read from
  free text by ``lmrl.tasks.chess.moves`` (the shared policy of ``lmrl.parsing``; the candidates are the
  legal moves, however written). Each step's info records which notation the agent used (``san``,
  ``uci`` or ``words``) and the move in SAN and UCI. The canonical action is the move in SAN (the
  paper's action text). A well-formed move that is not legal is refused as ``illegal`` (``ambiguous``
  for ``Nd2`` when two knights can go there) and costs -1.

**Opponent strength** (``lmrl.tasks.chess.strength``, which says why our setting differs from the
paper's): ``opponent_elo`` (default **1350**, Stockfish 15.1's ``UCI_Elo`` floor; below it, the engine's
moves are mixed with random ones), or ``opponent_skill`` (Skill Level 0..20); ``opponent_time``
(default **0.1** s, the paper's 100 ms) and ``opponent_depth`` limit each search.

Scripted policies: ``random`` (a uniformly random legal move), ``optimal`` (Stockfish at full strength
as the agent) and ``behavior`` (the paper's dataset generator: Stockfish at an Elo drawn uniformly from
[800, 1600] per game, mapped as in ``strength``, so 800..1349 mixes in random moves), in ``policies``.
Engine policies search under the same limit as the opponent.

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
import random
import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import chess
import chess.engine

from lmrl.options import flag_option
from lmrl.parsing import Parsed
from lmrl.task import Anchors, Policy, Segment, StepResult, Style, Task, TaskUnavailable
from lmrl.tasks.chess.engines import EngineFailure, EnginePool, engine_name, find_stockfish
from lmrl.tasks.chess.moves import ParsedMove, parse_move
from lmrl.tasks.chess.policies import behavior_policy, optimal_policy, random_policy
from lmrl.tasks.chess.strength import Strength, opponent_strength, pool_options, search_limit
from lmrl.tasks.registry import register_task

MAX_ACTIONS = 400


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
    # Stockfish searches for a fixed time (opponent_time), so the same seed can give another game.
    deterministic: ClassVar[bool] = False
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

    def candidate_actions(self) -> list[str] | None:
        """The legal moves now, in SAN: a value-guided local agent with ``rerank`` ranks whole moves
        (never an illegal one) instead of generating them character by character."""
        if self.done:
            return None
        return sorted(self.board.san(move) for move in self.board.legal_moves)

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
