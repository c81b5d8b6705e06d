"""The shared reply corpus: realistic model replies, one file per task, each with the action it must
parse to (or the reason it is invalid), run against the task's own ``parse`` (harness/parsing.py).

A corpus file is ``tests/parse_corpus/<task>.jsonl``; one JSON object per line:
``{"reply": str, "expect": action}`` or ``{"reply": str, "reason": "ambiguous"}``, with optional
``index``/``seed`` (the episode's reset), ``options`` (task options) and ``before`` (actions played
first, through the task's ``astep`` with its default partners, to reach a state).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from lmrl.agents import make_agent
from lmrl.parsing import Invalid
from lmrl.tasks import task_class, task_names

CORPUS = Path(__file__).parent / "parse_corpus"
MIN_REPLIES = 40
# Tasks whose corpus is another variant's (same parser, same action space).
SHARED = {"maze-po": "maze-fo", "textnav-po": "textnav-fo"}


def corpus_file(task: str) -> Path:
    return CORPUS / f"{SHARED.get(task, task)}.jsonl"


def load_corpus(task: str) -> list[dict]:
    lines = corpus_file(task).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("task", task_names())
def test_every_task_has_a_corpus(task: str) -> None:
    entries = load_corpus(task)
    assert len(entries) >= MIN_REPLIES, f"{corpus_file(task)} has {len(entries)} replies"
    for entry in entries:
        assert ("expect" in entry) != ("reason" in entry), entry


@contextlib.asynccontextmanager
async def ready_task(name: str, setup: dict):
    """A task reset as ``setup`` says (index, seed, options, actions played first), with its shared
    resources and default partners, closed afterwards."""
    cls = task_class(name)
    options = setup.get("options") or {}
    async with cls.open_shared(options) as shared:
        task = cls(**options)
        task.shared = shared
        partners = {role: make_agent(spec) for role, spec in cls.roles.items()}
        if partners:
            task.attach_partners(partners, setup.get("seed") or 0)
        task.reset(setup.get("seed") or 0, setup.get("index") or 0)
        try:
            for action in setup.get("before") or []:
                result = await task.astep(action)
                assert not result.invalid and not result.done, (action, result)
            yield task
        finally:
            await task.aclose()
            for agent in partners.values():
                await agent.aclose()


async def _parse_all(task_name: str) -> list[tuple[dict, object]]:
    results = []
    by_setup: dict[str, list[dict]] = {}
    for entry in load_corpus(task_name):
        setup = {k: entry.get(k) for k in ("index", "seed", "options", "before")}
        by_setup.setdefault(json.dumps(setup, sort_keys=True), []).append(entry)
    for setup_text, entries in by_setup.items():
        async with ready_task(task_name, json.loads(setup_text)) as task:
            results += [(entry, task.parse(entry["reply"])) for entry in entries]
    return results


@pytest.mark.anyio
@pytest.mark.parametrize("task", task_names())
async def test_the_prompt_states_the_answer_format_once_and_its_example_is_valid(task: str) -> None:
    async with ready_task(task, {}) as env:
        prompt = env.system_prompt()
        assert prompt.count(env.final_line_instruction()) == 1, "the answer format is stated once"
        assert isinstance(env.parse(env.answer_example), str), env.answer_example


@pytest.mark.anyio
@pytest.mark.parametrize("task", sorted({SHARED.get(t, t) for t in task_names()}))
async def test_corpus_parses_as_expected(task: str) -> None:
    wrong = []
    for entry, parsed in await _parse_all(task):
        if "expect" in entry:
            ok = parsed == entry["expect"]
        else:
            ok = isinstance(parsed, Invalid) and parsed.reason == entry["reason"]
        if not ok:
            want = entry.get("expect", entry.get("reason"))
            wrong.append(f"{entry['reply'][:80]!r}: got {parsed!r}, want {want!r}")
    assert not wrong, f"{len(wrong)} replies misparsed:\n" + "\n".join(wrong)
