from collections import Counter

from lmrl.sampling import stratified_item, stratified_order


def test_every_prefix_covers_categories_in_proportion() -> None:
    categories = ["a"] * 14 + ["b"] * 10 + ["c"] * 10 + ["d"] * 5
    order = stratified_order(categories, "test")
    assert sorted(order) == list(range(len(categories)))
    assert len({categories[i] for i in order[:4]}) == 4
    for n in (8, 13, 20, 27, 39):
        counts = Counter(categories[i] for i in order[:n])
        for category, size in Counter(categories).items():
            assert abs(counts[category] - n * size / len(categories)) <= 1.0, (n, category, counts)


def test_index_maps_through_passes_and_salt_changes_the_order() -> None:
    categories = [str(i % 7) for i in range(70)]
    first = [stratified_item(i, categories, "x") for i in range(70)]
    second = [stratified_item(i, categories, "x") for i in range(70, 140)]
    assert sorted(first) == sorted(second) == list(range(70))
    assert first != second  # a new pass is reshuffled
    assert first != stratified_order(categories, "y")
    assert first == [stratified_item(i, categories, "x") for i in range(70)]  # deterministic
