"""Which secret, city, buyer or position an episode index gets: a seeded, stratified permutation.

Sweeping a catalog in file order biases small runs (episodes 0-9 all from one category). Instead,
``stratified_item(index, categories, salt)`` walks a fixed permutation in which every prefix covers
the categories in proportion to their sizes: category ``c`` with ``n_c`` items places its items at
the evenly spaced keys ``(k + 1/2) / n_c`` (``k`` = 0, 1, ...), items shuffled within the category and
ties between categories broken by a seeded shuffle. So the first ``C`` indices hit ``C`` different
categories whenever no category is more than three times the size of another, and any ``N``
consecutive indices from 0 hold about ``N * n_c / n`` items of category ``c``. Index ``n`` and beyond
start another pass with a new permutation (pass number in the seed), so repeats are reshuffled.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=64)
def _permutation(categories: tuple[str, ...], salt: str, rounds: int) -> tuple[int, ...]:
    rng = random.Random(f"{salt}/{rounds}")
    by_category: dict[str, list[int]] = {}
    for item, category in enumerate(categories):
        by_category.setdefault(category, []).append(item)
    order = list(by_category)
    rng.shuffle(order)
    tie = {category: rank for rank, category in enumerate(order)}
    keyed = []
    for category in order:
        items = by_category[category]
        rng.shuffle(items)
        n = len(items)
        keyed += [((k + 0.5) / n, tie[category], item) for k, item in enumerate(items)]
    return tuple(item for _, _, item in sorted(keyed))


def stratified_order(categories: Sequence[str], salt: str, rounds: int = 0) -> list[int]:
    """The permutation of item positions for one pass (``categories[i]`` is item i's category)."""
    return list(_permutation(tuple(categories), salt, rounds))


def stratified_item(index: int, categories: Sequence[str], salt: str) -> int:
    """The item (a position in ``categories``) that episode ``index`` plays."""
    if not categories:
        raise ValueError("no items to choose from")
    rounds, position = divmod(index, len(categories))
    return _permutation(tuple(categories), salt, rounds)[position]
