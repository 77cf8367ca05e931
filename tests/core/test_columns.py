"""Text columns and the id lookup: the same answers as a list and a dict, without either at load."""

from __future__ import annotations

import numpy as np
import pytest

from reccore import columns
from reccore.columns import CategoryColumn, IdLookup, StringColumn, id_hashes

IDS = ["u1", "", "é", "naïve café", "🎬 film", "u1 ", "x" * 300, "a\x00b"]


def test_a_string_column_gives_back_each_string() -> None:
    column = StringColumn.of(IDS)
    assert len(column) == len(IDS) and list(column) == IDS and column == IDS
    assert [column[i] for i in range(len(IDS))] == IDS and column[-1] == IDS[-1] and column[2:4] == IDS[2:4]
    with pytest.raises(IndexError):
        column[len(IDS)]
    assert StringColumn.of([]) == [] and list(StringColumn.of([])) == []


def test_text_that_is_not_unicode_is_refused_naming_the_row() -> None:
    with pytest.raises(ValueError, match="row 1 holds text that is not valid Unicode"):
        StringColumn.of(["fine", "bad \udfff"])


def test_the_lookup_answers_as_a_dict_would() -> None:
    lookup = IdLookup.of(StringColumn.of(IDS))
    expected = {key: row for row, key in enumerate(IDS)}
    assert dict(lookup.items()) == expected and len(lookup) == len(IDS)
    for key in [*IDS, "u2", "U1", "u1\n", "é ", "x" * 299]:
        assert lookup.get(key) == expected.get(key)
        assert (key in lookup) == (key in expected)
    assert lookup.rows_of(["é", "missing", "u1"]) == [2, None, 0] and lookup.rows_of([]) == []
    with pytest.raises(KeyError):
        lookup["missing"]
    assert lookup.get(3) is None  # not a string


def test_ids_sharing_a_hash_are_told_apart_by_their_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # A forced collision: every id hashes to 7, so only the text comparison can find the row.
    monkeypatch.setattr(columns, "_hash", lambda key: 7)
    lookup = IdLookup(StringColumn.of(["a", "b", "c", "d"]), np.full(4, 7, dtype=np.uint64), np.array([2, 0, 3, 1]))
    assert [lookup.get(key) for key in "abcd"] == [0, 1, 2, 3]
    assert lookup.get("e") is None


def test_repeated_ids_are_reported() -> None:
    assert IdLookup.of(StringColumn.of(["a", "b", "a", "c", "b"])).repeated() == ["a", "b"]
    assert IdLookup.of(StringColumn.of(IDS)).repeated() == []


def test_hashes_are_the_same_in_every_process() -> None:
    # blake2b, not the salted built-in hash: the pipeline computes them, the service searches them.
    assert id_hashes(["u1"]).tolist() == [int.from_bytes(__import__("hashlib").blake2b(b"u1", digest_size=8)
                                                         .digest(), "little")]  # fmt: skip


def test_category_codes_follow_the_sorted_names() -> None:
    column = CategoryColumn.of(["b", "a", "b", "c"])
    assert column.names == ["a", "b", "c"] and column.codes.tolist() == [1, 0, 1, 2]
    assert list(column) == ["b", "a", "b", "c"] and column[1:3] == ["a", "b"]
