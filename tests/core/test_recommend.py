"""The one recommendation path: strategy choice, seen-item exclusion, filters and backfill."""

from __future__ import annotations

import numpy as np

from reccore.model import Model
from reccore.recommend import Interactions, recommend
from reccore.scoring import Filters, Ranking, similar_items, top_items


def ids(ranking: Ranking) -> list[int]:
    return ranking.items.tolist()


def test_known_user_is_personalized_without_their_seen_items(tiny: Model) -> None:
    ranking = recommend(tiny, 2, user=0)
    assert ranking.strategy == "personalized"
    assert ids(ranking) == [1, 0]  # item 2 is seen; 1 scores above 0
    assert ranking.sources == ["model", "model"]


def test_seen_items_stay_when_not_excluded(tiny: Model) -> None:
    assert ids(recommend(tiny, 2, user=0, exclude_seen=False)) == [2, 1]


def test_unknown_user_with_interactions_is_folded_in(tiny: Model) -> None:
    ranking = recommend(tiny, 2, interactions=Interactions.of([4]))
    assert ranking.strategy == "fold_in"
    assert ids(ranking) == [5, 3]  # the "b" items, the given one excluded
    assert ranking.sources == ["content", "model"]  # item 5 is a cold, content-based item


def test_strengths_change_the_folded_vector(tiny: Model) -> None:
    heavy_b = recommend(tiny, 1, interactions=Interactions.of([0, 3], [1.0, 10.0]), exclude_seen=False)
    heavy_a = recommend(tiny, 1, interactions=Interactions.of([0, 3], [10.0, 1.0]), exclude_seen=False)
    assert ids(heavy_b) == [5] and ids(heavy_a) == [2]


def test_a_zero_vector_user_falls_back_to_their_interactions_then_popularity(tiny: Model) -> None:
    assert recommend(tiny, 1, user=2, interactions=Interactions.of([0])).strategy == "fold_in"
    ranking = recommend(tiny, 3, user=2)
    assert ranking.strategy == "popular"
    assert ids(ranking) == [0, 1, 2]  # by popularity, seen item 3 excluded anyway
    assert ranking.sources == ["popular"] * 3


def test_nobody_gets_popular(tiny: Model) -> None:
    ranking = recommend(tiny, 2)
    assert ranking.strategy == "popular" and ids(ranking) == [0, 1]


def test_filters_apply_and_popularity_backfills_to_k(tiny: Model) -> None:
    ranking = recommend(tiny, 4, user=0, filters=Filters(exclude_items=frozenset({1})))
    # item 2 is seen and item 1 excluded: item 0 ranks first, then the "b" items (score 0 for user 0)
    assert ids(ranking)[0] == 0 and sorted(ids(ranking)) == [0, 3, 4, 5]
    only_b = recommend(tiny, 5, user=0, filters=Filters(include_categories=frozenset({"b"})))
    assert sorted(ids(only_b)) == [3, 4, 5]  # only three "b" items exist: fewer than k, never a disallowed one


def test_every_ranking_function_returns_a_ranking(tiny: Model) -> None:
    top = top_items(tiny, np.array([0, 1], dtype=np.float32), 2, np.ones(6, dtype=bool))
    similar = similar_items(tiny, 4, 2)
    assert ids(top) == [5, 4] and top.sources == ["content", "model"]
    assert ids(similar)[:2] == [3, 5] or ids(similar)[:2] == [5, 3]
    assert 4 not in ids(similar)
    assert all(isinstance(r, Ranking) for r in (top, similar, recommend(tiny, 1)))


def test_newest_interactions_by_timestamp_else_by_list_order() -> None:
    timed = Interactions.of([10, 11, 12, 13], [1.0, 2.0, 3.0, 4.0], [40.0, 10.0, 30.0, 20.0])
    newest = timed.newest(2)
    assert newest.items.tolist() == [12, 10]  # oldest first among the two newest
    assert newest.strengths is not None and newest.strengths.tolist() == [3.0, 1.0]
    assert Interactions.of([10, 11, 12, 13]).newest(3).items.tolist() == [11, 12, 13]
    assert Interactions.of([10, 11]).newest(5).items.tolist() == [10, 11]


def test_only_the_newest_are_folded_in_but_every_interaction_is_excluded(tiny: Model) -> None:
    # Oldest first: two "a" items, then one "b" item. Folding in only the newest one gives a "b" vector.
    history = Interactions.of([0, 1, 3])
    capped = recommend(tiny, 2, interactions=history, max_fold_in=1)
    assert capped.strategy == "fold_in" and capped.truncated == 2
    assert ids(capped) == [5, 4]  # "b" items ranked by the newest alone; items 0, 1 and 3 all excluded
    whole = recommend(tiny, 2, interactions=history)
    assert whole.truncated == 0 and ids(whole) == [2, 5]  # "a" dominates when everything is folded in
    known = recommend(tiny, 2, user=0, interactions=history, max_fold_in=1)  # stored [1, 0] plus the newest, item 3
    assert known.strategy == "personalized" and known.truncated == 2
    assert ids(known) == [5, 4]  # item 2 seen in training, 0, 1 and 3 given: all excluded


def test_a_known_users_new_interactions_move_their_vector(tiny: Model) -> None:
    before = recommend(tiny, 1, user=3)  # likes "a"
    after = recommend(tiny, 1, user=3, interactions=Interactions.of([4, 4, 4], [5.0, 5.0, 5.0]))
    assert before.strategy == after.strategy == "personalized"
    assert ids(before) == [2] and ids(after) == [5]  # the new "b" purchases outweigh the stored "a" taste


def test_store_seen_items_are_excluded_too(tiny: Model) -> None:
    assert ids(recommend(tiny, 2, user=0, seen=np.array([1]))) == [0, 3]
