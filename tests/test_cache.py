"""The response cache (``lmrl run --cache``, ``lmrl cache``): reruns replay from disk, request for request."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import pytest

from lmrl.agents import AgentOptions, Completion
from lmrl.cache import FILE, ResponseCache, episode_scope, request_key, use_cache
from lmrl.cli import main
from lmrl.rundir import read_records
from lmrl.runner import RunConfig, Runner

ROOT = Path(__file__).resolve().parent.parent
TIMING = {"started_at", "wall_s"}


def served(fake_server, model: str) -> int:
    return sum(r["model"] == model.removeprefix("openai/") for r in fake_server.requests())


def run(fake_server, out: Path, model: str, *extra: str) -> int:
    args = ["run", "--task", "maze-fo", "--model", model, "--episodes", "2", "--out", str(out)]
    return main([*args, "--api-base", fake_server.api_base, "--no-progress", *extra])


def content(out: Path) -> dict[str, dict]:
    """Each episode by key, without wall-clock fields and the hit count a cached replay adds."""
    episodes = {}
    for record in read_records(out / "episodes.jsonl"):
        record = {k: v for k, v in record.items() if k not in TIMING}
        record["info"] = {k: v for k, v in record["info"].items() if k != "cache_hits"}
        record["turns"] = [{k: v for k, v in t.items() if k != "latency_s"} for t in record["turns"]]
        for usage in record["role_usage"].values():
            del usage["latency_s"]
        episodes[record["key"]] = record
    return episodes


def test_rerun_with_cache_makes_no_request_and_writes_identical_episodes(
    fake_server, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("LMRL_CACHE", str(tmp_path / "cache"))  # the default directory comes from it
    model = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    judge = f"openai/say@text=Score: 4@id={uuid.uuid4().hex[:8]}"
    judged = [
        "--judge",
        f"agent-quality={judge}",
        "--judge-option",
        f"agent-quality.api_base={fake_server.api_base}",
    ]
    # Same run name in two parents: the run id matches, the directory is new.
    assert run(fake_server, tmp_path / "first" / "run", model, "--cache", *judged) == 0
    made = served(fake_server, model)
    assert made > 0 and served(fake_server, judge) == 2 and (tmp_path / "cache" / FILE).exists()
    capsys.readouterr()

    again = ["--cache", "--transport", "litellm", *judged]
    assert run(fake_server, tmp_path / "again" / "run", model, *again) == 0
    assert served(fake_server, model) == made  # not one request: the transport is not part of the key
    assert served(fake_server, judge) == 2
    assert f"{made + 2} hit(s), 0 new" in capsys.readouterr().err
    first, again = content(tmp_path / "first" / "run"), content(tmp_path / "again" / "run")
    assert first == again and len(first) == 2
    for record in read_records(tmp_path / "again" / "run" / "episodes.jsonl"):
        assert record["info"]["cache_hits"] == record["length"] + 1  # and the judge's call
        assert [entry["score"] for entry in record["judges"].values()] == [4]
        assert record["cost_usd"] == 0
    assert all(
        "cache_hits" not in r["info"] for r in read_records(tmp_path / "first" / "run" / "episodes.jsonl")
    )

    assert run(fake_server, tmp_path / "uncached", model) == 0  # off by default: the server is asked
    assert served(fake_server, model) == 2 * made


def test_other_options_seeds_or_roles_miss(fake_server, tmp_path):
    model = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert run(fake_server, tmp_path / "a", model, *cache) == 0
    made = served(fake_server, model)
    assert run(fake_server, tmp_path / "b", model, *cache, "--temperature", "0.5") == 0
    assert served(fake_server, model) == 2 * made
    assert run(fake_server, tmp_path / "c", model, *cache, "--seed", "1") == 0
    assert served(fake_server, model) > 2 * made
    before = served(fake_server, model)
    assert run(fake_server, tmp_path / "d", model, *cache, "--temperature", "0.5") == 0
    assert served(fake_server, model) == before  # each of them is now cached in turn


@pytest.mark.anyio
async def test_partner_calls_are_cached_per_occurrence(fake_server, tmp_path):
    # imported here, not at collection: importing registers the test task, and the tests that run over
    # every built-in task are parametrized at collection
    from test_roles import EchoOracle

    oracle = f"openai/say@text=No.@id={uuid.uuid4().hex[:8]}"

    def config(name: str) -> RunConfig:
        return RunConfig(
            out=tmp_path / name / "run",
            tasks=[EchoOracle.name],
            models=["scripted/asker"],
            episodes=3,
            roles={"oracle": oracle},
            role_options={"oracle": AgentOptions(api_base=fake_server.api_base)},
            cache=tmp_path / "cache",
        )

    assert (await Runner(config("first")).run()).errors == 0
    assert served(fake_server, oracle) == 6
    # The oracle hears the same question twice an episode: two entries, as the server answered twice.
    with sqlite3.connect(tmp_path / "cache" / FILE) as db:
        assert db.execute("SELECT role, COUNT(*) FROM responses GROUP BY role").fetchall() == [("oracle", 6)]
    runner = Runner(config("again"))
    assert (await runner.run()).errors == 0
    assert served(fake_server, oracle) == 6 and runner.cache is not None and runner.cache.hits == 6
    assert content(tmp_path / "first" / "run") == content(tmp_path / "again" / "run")


def test_the_key_covers_the_request_role_and_episode(tmp_path):
    request = {"model": "openai/m", "endpoint": None, "options": {"temperature": 0}, "messages": []}
    assert request_key(request, "agent") == request_key(dict(request), "agent")  # no episode: stable
    assert request_key(request, "agent") != request_key(request, "oracle")
    assert request_key(request, "agent") != request_key({**request, "options": {"temperature": 1}}, "agent")
    # Credentials are no part of it: a rotated key still hits.
    keyed = {**request, "options": {"temperature": 0, "api_key": "sk-one"}}
    assert request_key(keyed, "agent") == request_key(request, "agent")
    with use_cache(tmp_path):
        keys = []
        for seed, epoch in ((1, 0), (1, 0), (2, 0), (1, 1)):
            with episode_scope(seed, epoch):
                keys.append((request_key(request, "agent"), request_key(request, "agent")))
    assert keys[0] == keys[1] and keys[0][0] != keys[0][1]  # the second identical call is its own entry
    assert len({k for pair in keys[1:] for k in pair}) == 6


def test_the_key_encoding_keeps_different_conversations_apart():
    base = {"model": "openai/m", "endpoint": None, "options": {}}

    def key(messages=None, prompt=None) -> str:
        request = {**base, "messages": messages} if prompt is None else {**base, "prompt": prompt}
        return request_key(request, "agent")

    def user(content):
        return {"role": "user", "content": content}

    chats = [
        [user("ab")],
        [user("a"), user("b")],
        [{"role": "us", "content": "erab"}],  # the split between role and content counts
        [user("ab"), user("")],
        [user([{"type": "text", "text": "ab"}])],  # not a string: encoded as JSON
        [user('[{"text":"ab","type":"text"}]')],  # ... and apart from that JSON as text
        [{"role": "user", "content": "ab", "name": "x"}],
        [],
    ]
    keys = [key(chat) for chat in chats] + [key(prompt="ab"), key(prompt="")]
    assert len(set(keys)) == len(keys)
    assert key([{"content": "ab", "role": "user"}]) == keys[0]  # the order of a message's fields does not
    assert key([user([{"text": "ab", "type": "text"}])]) == keys[4]


class CountingConnection:
    """A sqlite3 connection that counts the statements run on it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.statements = db, []

    def execute(self, sql, *args):
        self.statements.append(sql)
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


@pytest.mark.anyio
async def test_absent_keys_are_misses_without_a_read_and_a_present_one_is_read_back(tmp_path):
    cache = ResponseCache(tmp_path)
    cache.put("stored", "openai/m", "agent", Completion("yes", 1, 2, 0.5))
    cache._db = counting = CountingConnection(cache._db)
    assert await cache.aget("never-stored") is None and counting.statements == []  # a cold cache never reads
    assert await cache.aget("stored") == Completion("yes", 1, 2, 0.0)
    assert len(counting.statements) == 1
    # The index only says "maybe": a key it lists (another's hash, an entry deleted since) is read back
    # from SQLite, so it can never answer with another request's reply.
    cache._index.add(hash("listed-not-stored"))
    assert await cache.aget("listed-not-stored") is None
    with sqlite3.connect(tmp_path / FILE) as other:
        other.execute("DELETE FROM responses WHERE key = 'stored'")
    other.close()
    assert await cache.aget("stored") is None
    assert cache.hits == 1 and cache.errors == 0
    cache._db = counting.db
    cache.close()


async def wait_stored(cache: ResponseCache, count: int) -> None:
    for _ in range(500):
        if cache.stored >= count:
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"the writer stored {cache.stored} of {count}")


@pytest.mark.anyio
async def test_keys_another_connection_writes_are_found_after_the_next_batch(tmp_path):
    # Another connection to the file is what another process is to SQLite.
    mine, theirs = ResponseCache(tmp_path), ResponseCache(tmp_path)
    theirs.put("theirs", "openai/m", "agent", Completion("theirs"))
    assert await mine.aget("theirs") is None  # written since mine loaded its index: a wrong "absent"
    mine.store("mine", "openai/m", "agent", Completion("mine"))
    await wait_stored(mine, 1)
    assert await mine.aget("theirs") == Completion("theirs")  # learned when it wrote its batch
    # Emptied by another process and refilled below the rowids seen: the index reads the table again.
    theirs.clear()
    theirs.put("refilled", "openai/m", "agent", Completion("refilled"))
    mine.store("mine-2", "openai/m", "agent", Completion("mine 2"))
    await wait_stored(mine, 2)
    assert await mine.aget("refilled") == Completion("refilled")
    assert await mine.aget("theirs") is None  # still listed, gone from disk: a miss, read back
    theirs.close()
    mine.close()
    later = ResponseCache(tmp_path)  # a later run finds every entry from its start
    found = [await later.aget(k) is not None for k in ("refilled", "mine-2", "mine", "theirs")]
    assert found == [True, True, False, False]  # the last two were cleared
    assert later.errors == mine.errors == 0
    later.close()


@pytest.mark.anyio
async def test_stored_replies_are_written_in_batches_and_by_close(tmp_path):
    cache = ResponseCache(tmp_path)
    sent = [Completion(f"reply {i}", i, 2 * i, 0.25, token_ids=[i, 7], logprobs=[-0.5]) for i in range(300)]
    for i, completion in enumerate(sent):
        cache.store(f"k{i}", "openai/m", "agent", completion)
        if i == 150:
            await anyio.sleep(0)
    sent[0].text = "changed after it was stored"  # the row has what the call returned
    cache.close()
    assert cache.stored == 300 and cache.errors == 0
    again = ResponseCache(tmp_path)
    assert again.get("k0") == Completion("reply 0", 0, 0, 0.0, token_ids=[0, 7], logprobs=[-0.5])
    assert again.get("k299") == Completion("reply 299", 299, 598, 0.0, token_ids=[299, 7], logprobs=[-0.5])
    assert again.summary()["entries"] == 300
    again.close()


WRITER = """
import sys, time
from pathlib import Path
from lmrl.agents import Completion
from lmrl.cache import ResponseCache
directory, start, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cache = ResponseCache(directory)
while not start.exists():
    time.sleep(0.005)
for i in range(300):
    key = f"shared-{i}" if i < 100 else f"{name}-{i}"
    cache.put(key, f"model-{name}", "agent", Completion(f"{name} {i}", 3, 4, 0.5))
    assert cache.get(key) is not None
cache.close()
"""


def test_two_processes_writing_at_once_leave_a_sound_cache(tmp_path):
    start = tmp_path / "start"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / "cache"), str(start), name],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    time.sleep(0.5)  # both opened the file (or are opening it) when the writes start
    start.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    with sqlite3.connect(tmp_path / "cache" / FILE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (500,)
    cache = ResponseCache(tmp_path / "cache")
    assert cache.get("one-150") == Completion("one 150", 3, 4, 0.0)  # a hit is free in the new run
    assert sum(cache.summary()["models"].values()) == 500
    cache.close()


def test_list_prune_and_clear(tmp_path, capsys):
    cache = ResponseCache(tmp_path)
    for i in range(5):
        cache.put(f"k{i}", "openai/a" if i < 3 else "openai/b", "agent", Completion("x"))
    cache._db.execute("UPDATE responses SET created_at = created_at - 8 * 86400 WHERE key IN ('k0', 'k3')")
    cache.close()
    where = ["--cache-dir", str(tmp_path)]
    assert main(["cache", "list", *where]) == 0
    listed = capsys.readouterr().out
    assert "5 entries" in listed and "3  openai/a" in listed and "2  openai/b" in listed
    assert main(["cache", "prune", "--older-than", "7d", *where]) == 0
    assert "deleted 2 entries" in capsys.readouterr().out
    assert main(["cache", "prune", "--older-than", "1h", *where]) == 0
    assert "deleted 0 entries" in capsys.readouterr().out
    assert main(["cache", "list", *where]) == 0
    assert "3 entries" in capsys.readouterr().out
    assert main(["cache", "clear", *where]) == 0
    assert "deleted 3 entries" in capsys.readouterr().out
    assert main(["cache", "list", *where]) == 0
    assert "0 entries" in capsys.readouterr().out
    assert main(["cache", "list", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "no response cache" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("value", ["7", "7w", "-1d", "d", "1.5.5h"])
def test_a_bad_duration_is_one_line_exit_2(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["cache", "prune", f"--older-than={value}", "--cache-dir", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "not a duration" in err and len(err.splitlines()) == 1


def test_an_unusable_cache_dir_is_one_line_exit_2_and_leaves_no_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = tmp_path / "run"
    args = ["run", "--task", "maze-fo", "--model", "scripted/random", "--episodes", "1", "--out", str(out)]
    assert main([*args, "--no-progress", "--cache-dir", str(blocker / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot use the response cache" in err and len(err.splitlines()) == 1
    assert not (out / "episodes.jsonl").exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / FILE).write_text("this is not a database, " * 100)
    assert main(["cache", "list", "--cache-dir", str(tmp_path / "bad")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_no_api_key_reaches_the_cache_and_a_new_key_still_hits(fake_server, tmp_path, monkeypatch):
    model = f"openai/maze@id={uuid.uuid4().hex[:8]}"
    keys = ["sk-lmrl-cache-" + uuid.uuid4().hex for _ in range(2)]
    monkeypatch.setenv("OPENAI_API_KEY", keys[0])
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert run(fake_server, tmp_path / "a", model, *cache, "--transport", "litellm") == 0
    made = served(fake_server, model)
    monkeypatch.setenv("OPENAI_API_KEY", keys[1])
    assert run(fake_server, tmp_path / "b", model, *cache) == 0
    assert served(fake_server, model) == made
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir())
    assert b"Action: move" in stored  # the replies are there (a check that reads the right files)
    for key in keys:
        assert key.encode() not in stored
