"""Reading a chess move from free model text: SAN, square to square (UCI), words, figurines.

``parse_move(board, reply)`` applies the shared reading policy (``lmrl.parsing.read_action``) with the
legal moves of ``board`` as candidates, however they are written: any letter case (``NF3``, ``E4``),
figurines (``♘f3``), move numbers (``1. e4``, ``12...Nf6``), check marks and annotations, the paper's
spaced characters (``N f 3``) as a whole answer, ``Knight to f3`` / ``pawn takes d5`` / ``castle
kingside``. A longer move expression hides the squares inside it (``Nf3 (g1 to f3)`` is one move); a
bare square used as a place (``controls d4``, ``the e5 square``) is not a pawn move. A well-formed move
that is not legal is refused as ``illegal`` (``ambiguous`` for ``Nd2`` when two knights can go there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import chess

from lmrl.parsing import Invalid, Parsed, Span, non_overlapping, read_action

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
