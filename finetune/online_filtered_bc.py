"""Online filtered BC (the paper's online %BC): each round, keep the episodes that succeeded (or the
top fraction by return, ``--filter top:0.3``) and take ``update_epochs`` passes of behaviour cloning on
their action tokens, as sampled."""

from __future__ import annotations

from typing import Any

from lmrl.finetune.common import bc_loss, forward
from lmrl.finetune.data import DatasetError, filter_episodes, top_fraction_of
from lmrl.finetune.policy import Item, collate_items

NAME = "online-filtered-bc"
VALUE_HEAD = False
DEFAULTS: dict[str, Any] = {"kl_coef": 0.0, "update_epochs": 1}


def prepare(ctx: Any, episodes: list[Any], samples: list[list[Any]]) -> tuple[list[Item], dict[str, float]]:
    top = top_fraction_of(ctx.settings["filter"])  # checked when the run started
    try:
        kept = {id(e) for e in filter_episodes(episodes, success_only=top is None, top_fraction=top)}
    except DatasetError:  # nothing passed the filter this round: no update
        kept = set()
    items = [
        Item(s)
        for episode, turns in zip(episodes, samples, strict=True)
        if id(episode) in kept
        for s in turns
    ]
    return items, {"kept_episodes": float(len(kept))}


def loss(ctx: Any, items: list[Any]):
    batch = collate_items(items, ctx.tokenizer.pad_token_id, ctx.device)
    bc = bc_loss(forward(ctx.model, batch))
    return bc, {"bc": float(bc.detach())}
