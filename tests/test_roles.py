"""Partner roles: a task declares them, any agent spec fills them, usage is kept per role."""

from __future__ import annotations

import uuid
from typing import ClassVar

import pytest

from lmrl.agents import AgentOptions
from lmrl.cli import main
from lmrl.rundir import load_episodes
from lmrl.runner import RunConfig, RunConfigError, Runner
from lmrl.task import Anchors, Policy, StepResult, Task
from lmrl.tasks import register_task, task_names


def _oracle_says_yes(task: EchoOracle, rng) -> str:
    return "Yes." if task.last_question.endswith("?") else "No."


def _ask_twice(task: EchoOracle, rng) -> str:
    return "Is it blue?"


class EchoOracle(Task):
    """Ask two questions; the oracle's answers become the observations. +1 for every "Yes."."""

    name: ClassVar[str] = "test-echo-oracle"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "test task with an oracle role"
    anchors: ClassVar[Anchors] = Anchors(0, 1, 2, "test")
    reward_range: ClassVar[tuple[float, float]] = (0.0, 2.0)
    roles: ClassVar[dict[str, str]] = {"oracle": "scripted/yes-oracle"}
    policies: ClassVar[dict[str, Policy]] = {"yes-oracle": _oracle_says_yes, "asker": _ask_twice}
    max_steps = 2

    def setup(self, index: int) -> str:
        self.turn, self.last_question, self.yes = 0, "", 0
        return "Ask me."

    def step(self, action: str | None) -> StepResult:
        raise RuntimeError("needs astep")

    async def astep(self, action: str | None) -> StepResult:
        self.turn += 1
        self.last_question = action or ""
        answer = await self.ask(
            "oracle",
            [
                {"role": "system", "content": "Answer Yes. or No."},
                {"role": "user", "content": self.last_question},
            ],
        )
        reward = 1.0 if answer.strip().startswith("Yes") else 0.0
        self.yes += reward
        return StepResult(answer, reward, self.turn >= 2)

    def parse(self, raw: str) -> str | None:
        return raw.strip() or None

    def system_prompt(self) -> str:
        return "Ask questions."

    @property
    def success(self) -> bool:
        return self.yes == 2


if EchoOracle.name not in task_names():
    register_task(EchoOracle)


@pytest.mark.anyio
async def test_default_scripted_partner_fills_the_role(tmp_path):
    config = RunConfig(out=tmp_path / "run", tasks=[EchoOracle.name], models=["scripted/asker"], episodes=3)
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    for episode in load_episodes(tmp_path / "run"):
        assert episode.models == {"agent": "scripted/asker", "oracle": "scripted/yes-oracle"}
        assert episode.return_ == 2 and episode.role_usage["oracle"]["calls"] == 2


@pytest.mark.anyio
async def test_model_partner_over_http_with_its_own_ledger(fake_server, tmp_path):
    oracle = f"openai/say@text=No.@id={uuid.uuid4().hex[:8]}"
    config = RunConfig(
        out=tmp_path / "run",
        tasks=[EchoOracle.name],
        models=["scripted/asker"],
        episodes=4,
        roles={"oracle": oracle},
        role_options={"oracle": AgentOptions(api_base=fake_server.api_base)},
    )
    result = await Runner(config).run()
    assert result.complete and result.errors == 0
    episodes = load_episodes(tmp_path / "run")
    assert all(e.models["oracle"] == oracle and e.return_ == 0 for e in episodes)
    assert all(
        e.role_usage["oracle"]["calls"] == 2 and e.role_usage["oracle"]["tokens_in"] > 0 for e in episodes
    )
    served = [r for r in fake_server.requests() if r["model"] == oracle.removeprefix("openai/")]
    assert len(served) == 8 and all(r["first_user"] == "Is it blue?" for r in served)


def test_a_role_no_task_has_is_refused(tmp_path):
    config = RunConfig(
        out=tmp_path / "run",
        tasks=["maze-fo"],
        models=["scripted/random"],
        roles={"oracle": "scripted/yes-oracle"},
    )
    with pytest.raises(RunConfigError, match="no task in this run has that role"):
        Runner(config)


def test_bad_role_flag_is_one_line(tmp_path, capsys):
    code = main(
        [
            "run",
            "--task",
            EchoOracle.name,
            "--model",
            "scripted/asker",
            "--role",
            "oracle",
            "--out",
            str(tmp_path / "r"),
            "--no-progress",
        ]
    )
    assert code == 2 and "ROLE=SPEC" in capsys.readouterr().err
