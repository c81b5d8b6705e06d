"""Static transcript pages: ``transcripts/<task>/<model>/page-NNNN.html``, a fixed number of episodes
per page, so that a report of 100k episodes is many light pages rather than one heavy one.

Pages are written in a second pass over the episode logs: the first pass (``reports.load``) kept only
each episode's row and where its record lies; here the records are read again in file order and each
page is written as soon as all of its episodes have been rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from lmrl.episode import Episode
from lmrl.reports.html import esc, page, slug
from lmrl.reports.load import Loaded, iter_records
from lmrl.rundir import EPISODES

PER_PAGE = 25


def transcript_dir(task: str, model: str) -> str:
    """The folder of a task x model's pages, relative to the report's root."""
    return f"transcripts/{slug(task)}/{slug(model)}"


def page_name(number: int) -> str:
    return f"page-{number:04d}.html"


def assign_pages(episodes: pd.DataFrame, per_page: int = PER_PAGE) -> pd.DataFrame:
    """Each episode's page number and slot, in (index, epoch) order within its task x model."""
    ordered = episodes.sort_values(["task", "model", "index", "epoch", "run", "line"])
    position = ordered.groupby(["task", "model"], sort=False).cumcount()
    placed = ordered[["task", "model", "run", "line", "index", "epoch"]].copy()
    placed["page"] = position // per_page + 1
    placed["slot"] = position % per_page
    return placed


def write_transcripts(
    loaded: Loaded, out: Path, per_page: int = PER_PAGE, on_page: Callable[[], None] | None = None
) -> pd.DataFrame:
    """Write every page; return the page assignment (task, model, index, epoch -> page)."""
    placed = assign_pages(loaded.episodes, per_page)
    totals = placed.groupby(["task", "model"])["page"].max().to_dict()
    expected = placed.groupby(["task", "model", "page"]).size().to_dict()
    buffers: dict[tuple[str, str, int], dict[int, str]] = {}
    for run_number, group in placed.groupby("run", sort=True):
        run = loaded.runs[int(run_number)]
        wanted = {
            int(line): (task, model, int(number), int(slot))
            for line, task, model, number, slot in zip(
                group["line"], group["task"], group["model"], group["page"], group["slot"], strict=True
            )
        }
        for line, record in iter_records(run.path / EPISODES):
            target = wanted.get(line)
            if target is None:
                continue
            task, model, number, slot = target
            episode = Episode.from_dict(record)
            buffer = buffers.setdefault((task, model, number), {})
            buffer[slot] = render_episode(episode, loaded.prompts, run.path)
            if len(buffer) == expected[(task, model, number)]:
                _write_page(out, task, model, number, totals[(task, model)], buffer)
                del buffers[(task, model, number)]
                if on_page:
                    on_page()
    for (task, model, number), buffer in buffers.items():  # a log that changed since it was read
        _write_page(out, task, model, number, totals[(task, model)], buffer)
    return placed


def _write_page(out: Path, task: str, model: str, number: int, total: int, slots: dict[int, str]) -> None:
    folder = out / transcript_dir(task, model)
    folder.mkdir(parents=True, exist_ok=True)
    nav = ["<a href='../../../index.html'>report</a>"]
    if number > 1:
        nav.append(f"<a href='{page_name(number - 1)}'>&larr; previous</a>")
    nav.append(f"page {number} of {total}")
    if number < total:
        nav.append(f"<a href='{page_name(number + 1)}'>next &rarr;</a>")
    links = " · ".join(nav)
    body = (
        f"<h1>{esc(task)} · {esc(model)}</h1><nav>{links}</nav>"
        + "".join(slots[k] for k in sorted(slots))
        + f"<nav>{links}</nav>"
    )
    (folder / page_name(number)).write_text(page(f"{task} · {model} · page {number}", body), encoding="utf-8")


def render_episode(episode: Episode, prompts: dict[str, str], run_path: Path) -> str:
    """One episode: the system prompt, then per turn the observation (the environment's or a partner's
    words), the raw output, the parsed action or the invalid reason, the reward and the task's facts;
    the final observation, the judges' scores and rationales, the error."""
    partners = [role for role in episode.models if role != "agent"]
    speaker = "environment" + (f" / {', '.join(partners)}" if partners else "")
    status = (
        "error"
        if episode.error
        else ("success" if episode.success else ("truncated" if episode.truncated else "ended"))
    )
    parts = [
        f"<section class='episode' id='ep-{episode.index}-{episode.epoch}'>",
        f"<h3>episode {episode.index}, epoch {episode.epoch} — {esc(status)}, return "
        f"{esc(format(episode.return_, '.4g'))}, {episode.length} turns</h3>",
        "<p class='meta'>"
        + " · ".join(
            [f"seed {episode.seed}", f"run {esc(run_path)}", f"key {esc(episode.key)}"]
            + [f"{esc(role)}: {esc(spec)}" for role, spec in episode.models.items()]
            + ([f"{episode.invalid_count} invalid"] if episode.invalid_count else [])
            + ([f"${episode.cost_usd:.4g}"] if episode.cost_usd else [])
        )
        + "</p>",
    ]
    prompt = prompts.get(episode.prompt_id or "")
    if prompt:
        parts.append(f"<details><summary>system prompt</summary><pre>{esc(prompt)}</pre></details>")
    for i, turn in enumerate(episode.turns):
        facts = ", ".join(f"{esc(k)}={esc(_short(v))}" for k, v in turn.info.items())
        if turn.invalid:
            outcome = f"<span class='invalid'>invalid: {esc(turn.invalid_reason or 'unspecified')}</span>"
            if turn.invalid_detail:
                outcome += f" ({esc(turn.invalid_detail)})"
        else:
            outcome = f"action <code>{esc(turn.action)}</code>"
        ending = " · terminated" if turn.terminated else (" · truncated" if turn.truncated else "")
        parts.append(
            f"<div class='turn'><div class='who'>turn {i + 1} · {esc(speaker)}</div>"
            f"<pre>{esc(turn.observation)}</pre>"
            f"<div class='agent'><div class='who'>agent</div><pre>{esc(turn.raw_output)}</pre></div>"
            f"<div class='meta'>{outcome} · reward {esc(format(turn.reward, '.4g'))}{ending}"
            + (f"<br>{facts}" if facts else "")
            + "</div></div>"
        )
    if episode.final_observation:
        parts.append(
            f"<div class='turn'><div class='who'>final · {esc(speaker)}</div>"
            f"<pre>{esc(episode.final_observation)}</pre></div>"
        )
    for name, entry in episode.judges.items():
        score = entry.get("score")
        line = f"<b>judge {esc(name)}</b>: {esc('no score' if score is None else format(score, '.3g'))}"
        if entry.get("rationale"):
            line += f"<pre>{esc(entry['rationale'])}</pre>"
        if entry.get("error"):
            line += f" <span class='invalid'>failed: {esc(entry['error'])}</span>"
        parts.append(f"<div class='meta'>{line}</div>")
    if episode.error:
        parts.append(f"<p class='invalid'>episode error: {esc(episode.error)}</p>")
    parts.append("</section>")
    return "".join(parts)


def _short(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
