"""Chess and endgames: rules, rewards, the 400 cap, parsing, rendering, positions, real Stockfish games."""

from __future__ import annotations

import json
import os
import random
import signal
from collections import Counter
from pathlib import Path

import chess
import pytest

from lmrl.agents import ScriptedAgent
from lmrl.episode import Episode
from lmrl.parsing import Invalid
from lmrl.rollout import rollout
from lmrl.runner import RunConfig, RunConfigError, Runner
from lmrl.task import InvalidTaskOption, Segment, StepResult, TaskUnavailable, action_of
from lmrl.tasks import make_task, task_class
from lmrl.tasks.chess import (
    EVAL_SIZE,
    FULL_STRENGTH,
    INSTALL_HINT,
    MATERIALS,
    MAX_ACTIONS,
    PIECE_NAMES,
    Chess,
    Endgames,
    Strength,
    behavior_policy,
    find_stockfish,
    load_positions,
    material_of,
    move_list,
    opponent_strength,
    parse_move,
    random_endgame,
    read_header,
    text_observation,
)


def _stockfish() -> str | None:
    try:
        return find_stockfish()
    except TaskUnavailable:
        return None


needs_engine = pytest.mark.skipif(_stockfish() is None, reason=INSTALL_HINT)
FAST = {"opponent_depth": 1}  # the 1350-Elo opponent picks its move at depth 1 anyway
START_FEN = chess.STARTING_FEN


def stockfish_children() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    stat = file.read()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == os.getpid() and "stockfish" in stat[: stat.rindex(")")]:
                found.append(int(entry))
    return found


async def play(task: Chess, policy: str, seed: int = 0, index: int = 0) -> Episode:
    episode = await rollout(task, ScriptedAgent(policy), seed, index)
    assert episode.error is None, episode.error
    return episode


def check_terminal(task: Chess, played: Episode | list[StepResult]) -> None:
    results = played.turns if isinstance(played, Episode) else played
    last = results[-1]
    assert last.done and all(not r.done for r in results[:-1])
    assert task.result in ("1-0", "0-1", "1/2-1/2", "*")
    expected = {"1-0": 1.0, "0-1": -1.0}.get(task.result, 0.0)
    assert last.reward == expected and last.info["result"] == task.result
    if task.result != "*":
        outcome = task.board.outcome()
        assert outcome is not None and outcome.result() == task.result
        assert last.info["termination"] == outcome.termination.name.lower() == task.termination
    assert all(r.reward == (-1.0 if r.invalid else 0.0) for r in results[:-1])
    assert task.success == (task.result == "1-0")


# --- parsing (the replies themselves: tests/parse_corpus/chess.jsonl and endgames.jsonl) ----------
NOTATION_TABLE = [
    # (board FEN, agent text, canonical action, notation)
    (START_FEN, "I'll play **Nf3**.", "Nf3", "san"),
    (START_FEN, "Move: e2e4", "e4", "uci"),
    (START_FEN, "Move: g1 to f3", "Nf3", "uci"),
    (START_FEN, "Knight to f3", "Nf3", "words"),
    (START_FEN, "N f 3", "Nf3", "san"),
    ("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1", "castle long", "O-O-O", "san"),
    ("8/4P3/8/8/8/8/k7/4K3 w - - 0 1", "Move: e7e8q", "e8=Q", "uci"),
]


@pytest.mark.parametrize(("fen", "text", "action", "notation"), NOTATION_TABLE)
def test_parse_records_the_notation(fen: str, text: str, action: str, notation: str) -> None:
    board = chess.Board(fen)
    parsed, move = parse_move(board, text)
    assert parsed == action and move is not None and move.move is not None
    assert (move.text, move.notation, board.san(move.move)) == (action, notation, action)
    task = Chess()
    task._begin(board)
    assert task.parse(text) == action
    task.play_agent_action(action)
    assert task._pending["notation"] == notation


def test_every_legal_move_parses_to_itself() -> None:
    """Scripted policies answer in SAN: every legal move must read back as itself, in several positions."""
    rng = random.Random(5)
    endgames = [p.fen for p in load_positions()[:4]]  # one of each material
    for fen in (
        START_FEN,
        "r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1",
        "8/4P3/8/8/8/8/k7/4K3 w - - 0 1",
        *endgames,
    ):
        board = chess.Board(fen)
        for _ in range(12):
            if board.is_game_over():
                break
            for move in board.legal_moves:
                san = board.san(move)
                assert parse_move(board, san)[0] == san
                assert parse_move(board, f"Move: {san}")[0] == san
                assert parse_move(board, move.uci())[0] == san
            board.push(rng.choice(list(board.legal_moves)))


def test_illegal_moves_cost_one_and_change_nothing() -> None:
    task = Chess()
    task.reset(3)
    fen = task.board.fen()
    for text, reason in [("Move: Nf6", "illegal"), ("hmm", "unparsable"), ("Move: e2e5", "illegal")]:
        result = task.play_agent_action(action_of(task.parse(text)))
        assert result is not None
        assert (result.reward, result.done, result.invalid) == (-1.0, False, True)
        assert result.info["reason"] == reason and task.board.fen() == fen
        assert f"FEN: {fen}" in result.observation and "unchanged (-1)" in result.observation
    assert task.illegal_moves == 3 and task.actions == 3 and task.episode_info()["illegal_moves"] == 3
    task._begin(chess.Board("4k3/8/8/8/8/5N2/8/1N2K3 w - - 0 1"))
    result = task.play_agent_action(action_of(task.parse("Nd2")))
    assert (
        result is not None and result.info["reason"] == "ambiguous" and "Nbd2 or Nfd2" in result.observation
    )
    assert task.parse("Nd2") == Invalid("ambiguous", "Nd2: Nbd2 or Nfd2")
    result = task.play_agent_action("Nd2")  # a string straight to step: the same refusal
    assert result is not None and result.invalid_reason == "ambiguous"


@pytest.mark.anyio
async def test_the_400_cap_without_an_engine() -> None:
    task = Chess()
    task.reset(0)
    results = [await task.astep(action_of(task.parse("I pass"))) for _ in range(MAX_ACTIONS)]
    assert sum(r.reward for r in results) == -400 == task.reward_range[0]
    assert results[-1].done and not any(r.done for r in results[:-1])
    assert results[-1].info["termination"] == "max_actions" and task.result == "*" and not task.success
    assert "unfinished" in results[-1].observation and "Your move" not in results[-1].observation
    with pytest.raises(RuntimeError, match="finished"):
        await task.astep("e4")
    with pytest.raises(RuntimeError, match="use astep"):
        task.step("e4")


def test_terminal_rewards_by_rule() -> None:
    task = Chess()
    task._begin(chess.Board("7k/8/5K2/8/8/8/8/6Q1 w - - 0 1"))
    won = task.play_agent_action(action_of(task.parse("Move: Qg7#")))
    assert won is not None and (won.reward, won.done, task.result, task.success) == (1.0, True, "1-0", True)
    assert won.info["termination"] == "checkmate" and "you win" in won.observation

    task._begin(chess.Board("k7/8/1Q6/8/8/8/8/7K w - - 0 1"))
    drawn = task.play_agent_action(action_of(task.parse("Kg1")))  # stalemates Black
    assert drawn is not None and (drawn.reward, drawn.done, task.result) == (0.0, True, "1/2-1/2")
    assert drawn.info["termination"] == "stalemate"

    task.reset(0)
    for white, black in [("f3", "e7e5")]:
        assert task.play_agent_action(white) is None
        task.play_opponent_move(chess.Move.from_uci(black))
    assert task.play_agent_action("g4") is None
    lost = task.play_opponent_move(chess.Move.from_uci("d8h4"))
    assert (lost.reward, lost.done, task.result) == (-1.0, True, "0-1")
    assert lost.info["opponent_move"] == "Qh4#" and "you lose" in lost.observation
    assert task.episode_info()["plies"] == 4 and task.sans == ["f3", "e5", "g4", "Qh4#"]


# --- observations and rendering ------------------------------------------------------------------
def test_observations_and_both_renderings() -> None:
    task = Chess(show_legal_moves=True)
    first = task.reset(0)
    assert f"FEN: {START_FEN}" in first and "8 r n b q k b n r 8" in first
    assert (
        first.count(" ") > 20
        and "Legal moves: " in first
        and len(first.split("Legal moves: ")[1].split()) > 20
    )
    spaced = text_observation(first)
    assert spaced == (
        "r n b q k b n r / p p p p p p p p / 8 / 8 / 8 / 8 / P P P P P P P P / R N B Q K B N R"
        "   w   K Q k q   -   0   1"
    )
    task.play_agent_action("e4")
    second = task.play_opponent_move(chess.Move.from_uci("e7e5")).observation
    assert "You played e4; Black replied e5." in second and "Moves so far: 1. e4 e5" in second
    history = [
        Segment("observation", first),
        Segment("action", "e4", raw="Move: e4"),
        Segment("observation", second),
    ]
    text = task.render(history, "text")
    assert text == text_observation(second) + "\n" and text.startswith(
        "r n b q k b n r / p p p p 1 p p p / 8 / 4 p 3"
    )
    chat = task.render(history, "chat")
    assert [m["role"] for m in chat] == ["system", "user"] and chat[1]["content"] == second
    assert "Move: Nf3" in chat[0]["content"] and "-1" in chat[0]["content"]
    assert chat[0]["content"].count("final line") == 1 and task.final_line_instruction() in chat[0]["content"]
    endgame = make_task("endgames").system_prompt()
    assert "Move: Kd2" in endgame and "Nf3" not in endgame and "O-O" not in endgame
    assert task.format_action("Nf3") == "N f 3" and task.format_action("O-O") == "O - O"
    assert move_list(["e4", "e5", "Nf3"]) == "1. e4 e5 2. Nf3"


# --- options -------------------------------------------------------------------------------------
def test_opponent_strength_options() -> None:
    assert opponent_strength() == Strength(elo=1350)
    assert Strength(elo=1350).uci_options == {"UCI_LimitStrength": True, "UCI_Elo": 1350}
    assert Strength(elo=2000).uci_options["UCI_Elo"] == 2000 and Strength(elo=2000).random_move_p == 0
    low = Strength(elo=800)
    assert low.uci_options["UCI_Elo"] == 1350 and low.random_move_p == pytest.approx(0.5)
    assert Strength(elo=250).random_move_p == 1.0
    assert opponent_strength("max") == FULL_STRENGTH and FULL_STRENGTH.uci_options == {}
    assert opponent_strength(skill="3").uci_options == {"Skill Level": 3}
    task = make_task("chess", opponent_elo=1000, opponent_depth=4)
    options = task.options()
    assert options["opponent_elo"] == 1000 and options["opponent_depth"] == 4
    assert options["opponent_time"] is None and options["opponent_random_move_p"] == pytest.approx(350 / 1100)
    assert make_task("chess").options()["opponent_time"] == 0.1
    for bad in [
        {"opponent_elo": 100},
        {"opponent_elo": "strong"},
        {"opponent_elo": 1500, "opponent_skill": 2},
        {"opponent_skill": 21},
        {"opponent_time": 0},
        {"opponent_depth": 0},
        {"engines": 0},
        {"show_legal_moves": "maybe"},
        {"colour": "black"},
    ]:
        with pytest.raises(InvalidTaskOption) as error:
            make_task("chess", **bad)
        assert "\n" not in str(error.value)


# --- endgame positions ---------------------------------------------------------------------------
def test_endgame_generator_yields_legal_quiet_white_to_move_positions() -> None:
    for material in MATERIALS:
        for seed in range(250):
            board = random_endgame(random.Random(seed), material)
            assert board.is_valid() and board.turn == chess.WHITE and not board.is_check()
            assert not board.is_game_over() and not board.castling_rights and board.ep_square is None
            assert material_of(board) == material
            assert chess.popcount(board.occupied) == 2 + len(MATERIALS[material])
    assert material_of(chess.Board()) is None
    assert random_endgame(random.Random(5), "QR").fen() == random_endgame(random.Random(5), "QR").fen()


def test_evaluation_set() -> None:
    positions = load_positions()
    assert len(positions) == EVAL_SIZE == 645 and len({p.fen for p in positions}) == 645
    assert Counter(p.material for p in positions) == {"Q": 162, "R": 161, "QR": 161, "RR": 161}
    assert [p.material for p in positions[:8]] == ["Q", "R", "QR", "RR"] * 2  # interleaved
    for p in positions:
        board = chess.Board(p.fen)
        assert board.is_valid() and board.turn == chess.WHITE and not board.is_check()
        assert material_of(board) == p.material and p.mate_in >= 1
    header = read_header()
    assert "build_endgame_positions" in header["command"]  # tools/build_endgame_positions.py
    assert header["engine"].startswith("Stockfish") and header["analysis"]["depth"] >= 1
    assert header["count"] == 645


def test_endgames_task_positions() -> None:
    task = make_task("endgames")
    assert isinstance(task, Endgames) and task_class("endgames") is Endgames
    positions = load_positions()
    first = task.reset(0, 0)
    start = positions[task.eval_item(0)]
    assert f"FEN: {start.fen}" in first
    assert f"king, {' and '.join(PIECE_NAMES[p] for p in MATERIALS[start.material])} against" in first
    info = task.episode_info()
    assert info["start_fen"] == start.fen and info["material"] == start.material and info["mate_in"] >= 1
    rooks = make_task("endgames", material="RR")
    rooks.reset(0, 3)
    assert rooks.start_material == "RR" and material_of(rooks.board) == "RR"
    training = make_task("endgames", positions="random")
    eval_fens = {p.fen for p in positions}
    seen = set()
    for seed in range(40):
        training.reset(seed, 0)
        assert training.start_fen not in eval_fens and training.board.is_valid()
        seen.add(training.start_material)
    assert seen == set(MATERIALS)
    training.reset(7)
    again = training.start_fen
    training.reset(7)
    assert training.start_fen == again
    assert training.options()["positions"] == "random"
    for bad in [{"positions": "test"}, {"material": "QQ"}]:
        with pytest.raises(InvalidTaskOption):
            make_task("endgames", **bad)
    assert Endgames.anchors.avg == 0.586 and Endgames.reward_range == (-400.0, 1.0)


def test_endgame_indices_are_stratified_by_material() -> None:
    task = make_task("endgames")
    assert isinstance(task, Endgames) and Endgames.version == "2"
    materials = []
    for index in range(40):
        task.reset(0, index)
        assert task.start_material == material_of(task.board)
        materials.append(task.start_material)
    assert set(materials[:4]) == set(MATERIALS)  # the first four episodes: one of each
    for n in (8, 20, 40):  # any prefix: each material about a quarter
        assert all(abs(materials[:n].count(m) - n / 4) <= 1.0 for m in MATERIALS), materials[:n]
    first_pass = [task.eval_item(i) for i in range(EVAL_SIZE)]
    assert sorted(first_pass) == list(range(EVAL_SIZE))  # indices 0..644 play every position once
    assert task.eval_item(EVAL_SIZE) in range(EVAL_SIZE)
    assert [task.eval_item(i) for i in range(8)] == [make_task("endgames").eval_item(i) for i in range(8)]
    rooks = make_task("endgames", material="RR")
    assert {rooks.eval_set[rooks.eval_item(i)].material for i in range(10)} == {"RR"}


# --- real games against Stockfish ----------------------------------------------------------------
@needs_engine
@pytest.mark.anyio
async def test_random_agent_full_game_against_the_engine() -> None:
    task = make_task("chess", **FAST)
    assert isinstance(task, Chess)
    try:
        episode = await play(task, "random", seed=11)
        results = episode.turns
    finally:
        await task.aclose()
    check_terminal(task, results)
    assert all(not r.invalid for r in results)
    assert all("opponent_move" in r.info for r in results[:-1])
    assert f"FEN: {task.board.fen()}" in episode.final_observation
    assert results[0].info["notation"] == "san"
    assert stockfish_children() == []


@needs_engine
@pytest.mark.anyio
async def test_legal_400th_action_still_gets_a_reply() -> None:
    task = make_task("chess", **FAST)
    assert isinstance(task, Chess)
    task.reset(0)
    task.actions = MAX_ACTIONS - 1
    try:
        result = await task.astep(action_of(task.parse("Move: e2e4")))
    finally:
        await task.aclose()
    assert result.done and result.reward == 0.0 and result.info["termination"] == "max_actions"
    assert result.info["notation"] == "uci" and result.info["move"] == "e4" and "opponent_move" in result.info


@needs_engine
@pytest.mark.anyio
async def test_engine_policies() -> None:
    task = make_task("chess", **FAST)
    assert isinstance(task, Chess)
    try:
        task.reset(4)
        rng = random.Random(1)
        moves = [await behavior_policy(task, rng) for _ in range(3)]
        assert all(task.board.parse_san(m) for m in moves)
        assert 800 <= task.policy_state["behavior_elo"] <= 1600
        assert task.episode_info()["agent_policy"] == {"behavior_elo": task.policy_state["behavior_elo"]}
        # Full-strength Stockfish mates from each material's first evaluation position.
        endgame = make_task("endgames", opponent_depth=12)  # depth 8 can shuffle in K+R v K
        assert isinstance(endgame, Endgames)
        try:
            for index in range(4):
                episode = await play(endgame, "optimal", seed=index, index=index)
                check_terminal(endgame, episode)
                assert endgame.result == "1-0" and episode.turns[-1].reward == 1.0
            check_terminal(endgame, await play(endgame, "behavior", seed=1, index=2))
            assert 0 <= endgame.episode_info()["agent_policy"]["epsilon"] <= 1
        finally:
            await endgame.aclose()
    finally:
        await task.aclose()
    assert stockfish_children() == []


@needs_engine
@pytest.mark.anyio
async def test_killing_the_engine_mid_game_is_survived() -> None:
    task = make_task("chess", **FAST)
    assert isinstance(task, Chess)
    task.reset(2)
    rng = random.Random(2)
    results: list[StepResult] = []
    try:
        while not task.done:
            if len(results) in (3, 6):
                pool = await task.engine_pool()
                for pid in pool.pids():
                    os.kill(pid, signal.SIGKILL)
            results.append(await task.astep(action_of(task.parse(task.policies["random"](task, rng)))))
        assert (await task.engine_pool()).restarts == 2
    finally:
        await task.aclose()
    check_terminal(task, results)
    assert stockfish_children() == []


@needs_engine
@pytest.mark.anyio
async def test_runner_end_to_end_leaves_no_engine_behind(tmp_path: Path) -> None:
    config = RunConfig(
        out=tmp_path / "run",
        tasks=["chess"],
        models=["scripted/random"],
        episodes=2,
        concurrency=2,
        task_options={"chess": {**FAST, "engines": 2}},
    )
    result = await Runner(config).run()
    assert (result.finished, result.errors) == (2, 0)
    assert stockfish_children() == []
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    options = manifest["tasks"]["chess"]["options"]
    assert options["opponent_uci_options"] == {"UCI_LimitStrength": True, "UCI_Elo": 1350}
    assert options["engine"]["name"].startswith("Stockfish") and options["engines"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    for record in records:
        assert record["error"] is None and record["info"]["result"] in ("1-0", "0-1", "1/2-1/2", "*")
        assert record["info"]["opponent"]["limit"] == {"time": None, "depth": 1}


def test_missing_engine_stops_the_run_but_not_other_tasks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lmrl.cli import main
    from lmrl.tasks.chess import engines

    monkeypatch.setenv("STOCKFISH_PATH", str(tmp_path / "no-such-stockfish"))
    with pytest.raises(RunConfigError, match="apt-get install stockfish"):
        import anyio

        anyio.run(Runner(RunConfig(out=tmp_path / "r0", tasks=["chess"], models=["scripted/random"])).run)
    monkeypatch.delenv("STOCKFISH_PATH")
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    monkeypatch.setattr(engines, "FALLBACK_PATHS", ())
    out = tmp_path / "r1"
    code = main(["run", "--task", "chess", "--model", "scripted/random", "--out", str(out), "--no-progress"])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install stockfish" in err and "STOCKFISH_PATH" in err
    other = tmp_path / "r2"
    code = main(
        ["run", "--task", "maze-fo", "--model", "scripted/optimal", "--episodes", "1"]
        + ["--out", str(other), "--no-progress"]
    )
    assert code == 0 and (other / "episodes.jsonl").exists()


@pytest.mark.anyio
async def test_an_engine_that_keeps_failing_errors_the_episode_only(tmp_path: Path) -> None:
    from lmrl.agents import make_agent
    from lmrl.tasks.chess import EnginePool

    broken = tmp_path / "broken-engine"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    agent = make_agent("scripted/random")
    async with EnginePool(1, str(broken), start_timeout=5) as pool:
        task = make_task("chess", **FAST)
        task.shared = pool
        episode = await rollout(task, agent, seed=1, index=0)
    assert episode.error is not None and "failed twice" in episode.error and episode.length == 0
    assert episode.info["actions"] == 1  # the agent's move was played; Black's reply never came
