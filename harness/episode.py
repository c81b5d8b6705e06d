"""The one episode record shared by evaluation, reports and training.

Every finished episode becomes one JSON object on one line of ``runs/<name>/episodes.jsonl``.
Readers must accept records of any ``schema_version`` up to ``SCHEMA_VERSION`` and ignore
unknown fields, so adding an optional field never breaks an old run directory.

Field reference (schema 2; schema 1 records load too, see ``Episode.from_dict``)

Episode
    schema_version  int     version of this layout
    run_id          str     name of the run directory
    key             str     ``task/model_id/index/epoch``; unique within a run, what resume skips on
    task            str     registered task name (``maze-fo``)
    task_version    str     version of the task's rules; bumped whenever rewards or texts change
    index, epoch    int     episode index within the run and repetition number
    seed            int     the episode's seed, derived from the run seed (reruns reproduce)
    models          dict    role -> agent spec that filled it (``agent`` always present)
    role_usage      dict    partner role -> {calls, tokens_in, tokens_out, cost_usd, latency_s}
    turns           list    the ``Turn`` records, in order
    final_observation str   what the environment showed after the last step
    return_         float   undiscounted sum of rewards (``return`` in JSON)
    success         bool    the task's own success test (goal reached, word solved, ...)
    length          int     number of agent actions, invalid ones included
    terminated      bool    the task itself ended the episode (goal, game over, a decision)
    truncated       bool    a step cap cut it (the task's own cap or ``--max-turns``): values bootstrap
    invalid_count   int     actions the task could not parse or refused
    judges          dict    judge name -> {"score": float|None, "rationale"?: str, "error"?: str}
    info            dict    task facts for the record (maze start cell, the wordle secret, ...)
    error           str     ``None`` unless the episode failed; then the turns so far are kept
    prompt_id       str     the system prompt (chat) or header (text) it showed, in ``prompts.json``
    tokens_in/out   int     totals over the agent's turns
    cost_usd        float   total agent cost from litellm's bundled price map (0 when unknown)
    started_at, wall_s      UNIX start time and duration in seconds

Turn
    observation     str     text the environment showed before this action
    raw_output      str     exactly what the agent produced
    action          str     parsed, canonical action, or ``None`` when invalid
    invalid         bool    the output did not parse or the task refused it
    invalid_reason  str     why (``lmrl.parsing.REASONS``: no-action, ambiguous, illegal, ...); else None
    invalid_detail  str     what the reason is about (the two actions named, the word not in the list)
    reward          float   reward of this step
    done            bool    the episode ended at this step (terminated or truncated)
    terminated      bool    ... because the task ended it
    truncated       bool    ... because a step cap cut it
    info            dict    per-step task facts (feedback, opponent move, ...)
    tokens_in/out, cost_usd, latency_s   what the agent's call cost
    token_ids, logprobs     sampled token ids and log-probabilities (local checkpoints; else absent)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2  # 2: terminated / truncated on turns and episodes


@dataclass(slots=True)
class Turn:
    observation: str
    raw_output: str
    action: str | None
    invalid: bool
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)
    invalid_reason: str | None = None
    invalid_detail: str = ""
    terminated: bool = False
    truncated: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every info dict, most of a run's CPU on fast tasks.
        record = {name: getattr(self, name) for name in _TURN_FIELDS}
        if self.token_ids is None:
            del record["token_ids"]
        if self.logprobs is None:
            del record["logprobs"]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Turn:
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        if "terminated" not in record:  # schema 1: a turn that ended the episode ended it for good
            known["terminated"] = bool(record.get("done"))
        return cls(**known)


_TURN_FIELDS = tuple(Turn.__dataclass_fields__)


@dataclass(slots=True)
class Episode:
    run_id: str
    key: str
    task: str
    task_version: str
    index: int
    epoch: int
    seed: int
    models: dict[str, str]
    turns: list[Turn] = field(default_factory=list)
    final_observation: str = ""
    return_: float = 0.0
    success: bool = False
    length: int = 0
    terminated: bool = False
    truncated: bool = False
    invalid_count: int = 0
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)
    role_usage: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    prompt_id: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    started_at: float = 0.0
    wall_s: float = 0.0
    config_id: str | None = None  # the settings it was played with (manifest ``settings``), by id
    schema_version: int = SCHEMA_VERSION

    def add_turn(self, turn: Turn) -> None:
        """Append a turn and keep the running totals in step with it."""
        self.turns.append(turn)
        self.return_ += turn.reward
        self.length += 1
        self.invalid_count += turn.invalid
        self.terminated, self.truncated = turn.terminated, turn.truncated
        self.tokens_in += turn.tokens_in
        self.tokens_out += turn.tokens_out
        self.cost_usd += turn.cost_usd

    def to_dict(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "turns"}
        record["return"] = record.pop("return_")
        record["turns"] = [turn.to_dict() for turn in self.turns]
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Episode:
        record = dict(record)
        version = record.get("schema_version", 1)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"episode schema {version} is newer than this lmrl ({SCHEMA_VERSION}); upgrade lmrl"
            )
        record["return_"] = record.pop("return", 0.0)
        turns = [Turn.from_dict(t) for t in record.pop("turns", [])]
        if version < 2:
            # Schema 1 marked only the runner's own cap (info.truncated); everything else that ended
            # had ended for good.
            cut = bool((record.get("info") or {}).get("truncated"))
            if cut and turns:
                turns[-1].truncated, turns[-1].terminated = True, False
            record.setdefault("truncated", cut)
            record.setdefault("terminated", bool(turns) and turns[-1].terminated)
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        return cls(turns=turns, **known)

    def content_hash(self) -> str:
        """Identifies what a judge sees (the dialogue and the outcome), for caching judge scores."""
        content = [self.task, self.key, self.final_observation, self.return_, self.success]
        content += [[t.observation, t.raw_output, t.reward] for t in self.turns]
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:32]

    @classmethod
    def from_json(cls, line: str) -> Episode:
        return cls.from_dict(json.loads(line))


def episode_key(task: str, model_id: str, index: int, epoch: int) -> str:
    return f"{task}/{model_id}/{index}/{epoch}"
