"""Filtered behaviour cloning: BC on the episodes that succeeded (``--filter success``, the default)
or on the top fraction by return (``--filter top:0.1``). The filtering happens on the data
(``lmrl.finetune.data.filter_episodes``); the loss is BC's."""

from __future__ import annotations

from lmrl.finetune.bc import EXTRACTION, loss, make_heads

NAME = "filtered-bc"
__all__ = ["EXTRACTION", "NAME", "loss", "make_heads"]
