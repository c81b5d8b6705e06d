"""Chess and its endgames (LMRL-Gym §4.4, §4.5), registered as ``chess`` and ``endgames``.

The parts, each readable on its own:

* ``env``: the ``Chess`` environment (rules, rewards, the 400-action cap, observations, records);
* ``endgames``: ``Endgames``, the same rules from K+{Q,R,QR,RR} vs K positions, and their evaluation set;
* ``moves``: reading a move from free text (SAN, square to square, words, figurines);
* ``strength``: engine players' strength (Elo, Skill Level) and the engine options of the tasks;
* ``policies``: the scripted players (``random``, ``optimal``, ``behavior``);
* ``engines``: finding Stockfish, and the pool of engine processes a run's episodes share.

This module re-exports the public names.
"""

from lmrl.tasks.chess.endgames import (
    EVAL_PATH,
    EVAL_SIZE,
    MATERIALS,
    PIECE_NAMES,
    EndgamePosition,
    Endgames,
    load_positions,
    material_of,
    random_endgame,
    read_header,
)
from lmrl.tasks.chess.engines import INSTALL_HINT, EngineFailure, EnginePool, engine_name, find_stockfish
from lmrl.tasks.chess.env import (
    MAX_ACTIONS,
    Chess,
    board_diagram,
    describe_outcome,
    move_list,
    spaced,
    text_observation,
)
from lmrl.tasks.chess.moves import ParsedMove, move_spans, parse_move, read_move
from lmrl.tasks.chess.policies import behavior_policy, engine_san, optimal_policy, random_policy
from lmrl.tasks.chess.strength import (
    FULL_STRENGTH,
    Strength,
    opponent_strength,
    pool_options,
    search_limit,
)

__all__ = [
    "EVAL_PATH",
    "EVAL_SIZE",
    "FULL_STRENGTH",
    "INSTALL_HINT",
    "MATERIALS",
    "MAX_ACTIONS",
    "PIECE_NAMES",
    "Chess",
    "EndgamePosition",
    "Endgames",
    "EngineFailure",
    "EnginePool",
    "ParsedMove",
    "Strength",
    "behavior_policy",
    "board_diagram",
    "describe_outcome",
    "engine_name",
    "engine_san",
    "find_stockfish",
    "load_positions",
    "material_of",
    "move_list",
    "move_spans",
    "opponent_strength",
    "optimal_policy",
    "parse_move",
    "pool_options",
    "random_endgame",
    "random_policy",
    "read_header",
    "read_move",
    "search_limit",
    "spaced",
    "text_observation",
]
