"""Text columns stored as arrays: ids, titles and categories without a Python object per row at load.

A 1M-item catalogue held as Python lists and a ``dict`` of ids cost about 1 s and 300 MB at every cold start
(issue 21). Here a column is one UTF-8 buffer plus offsets (two ``.npy`` files, mapped, not parsed), a string is
decoded only when a response needs it, and an id is found through a sorted array of 64-bit hashes of the ids
(``searchsorted``, then the candidate's own text is compared), which the pipeline computes once.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import overload

import numpy as np


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """The 64-bit hash of each id (blake2b: the same in every process, unlike ``hash``)."""
    return np.fromiter((_hash(i) for i in ids), dtype=np.uint64)


class StringColumn(Sequence[str]):
    """Strings in row order: ``data`` holds their UTF-8 concatenated, ``offsets[i]:offsets[i + 1]`` is row ``i``."""

    __slots__ = ("data", "offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = data  # uint8
        self.offsets = offsets  # int64, len(self) + 1

    @classmethod
    def of(cls, strings: Iterable[str]) -> StringColumn:
        """Encode ``strings``. Raises ``ValueError`` naming the row of a string that is not valid Unicode."""
        encoded = []
        for row, text in enumerate(strings):
            try:
                encoded.append(str(text).encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise ValueError(f"row {row} holds text that is not valid Unicode: {text!r}") from exc
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, row: int) -> str: ...
    @overload
    def __getitem__(self, row: slice) -> list[str]: ...
    def __getitem__(self, row: int | slice) -> str | list[str]:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range for {len(self)} strings")
        return self.data[self.offsets[row] : self.offsets[row + 1]].tobytes().decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        data, offsets = self.data.tobytes(), self.offsets.tolist()
        return (data[start:end].decode("utf-8") for start, end in itertools.pairwise(offsets))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same strings (a list included)."""
        if not isinstance(other, Sequence) or isinstance(other, str) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


class CategoryColumn(Sequence[str]):
    """Each row's category as a code into the sorted distinct ``names``."""

    __slots__ = ("codes", "names")

    def __init__(self, names: list[str], codes: np.ndarray) -> None:
        self.names = names
        self.codes = codes  # int32

    @classmethod
    def of(cls, categories: Iterable[str]) -> CategoryColumn:
        """Code ``categories``: one dict pass, then only the distinct names are sorted (not a sort of every row)."""
        first: dict[str, int] = {}
        raw = np.fromiter((first.setdefault(str(c), len(first)) for c in categories), dtype=np.int32)
        names = sorted(first)
        remap = np.empty(len(names), dtype=np.int32)
        remap[[first[name] for name in names]] = np.arange(len(names), dtype=np.int32)
        return cls(names, remap[raw])

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, row: int) -> str: ...
    @overload
    def __getitem__(self, row: slice) -> list[str]: ...
    def __getitem__(self, row: int | slice) -> str | list[str]:
        if isinstance(row, slice):
            return [self.names[c] for c in self.codes[row]]
        return self.names[self.codes[row]]


class IdLookup(Mapping[str, int]):
    """Row of each id of a :class:`StringColumn`: ``hashes`` sorted ascending, ``rows[j]`` the row of ``hashes[j]``."""

    __slots__ = ("hashes", "ids", "rows")

    def __init__(self, ids: StringColumn, hashes: np.ndarray, rows: np.ndarray) -> None:
        self.ids = ids
        self.hashes = hashes  # uint64
        self.rows = rows  # int64

    @classmethod
    def of(cls, ids: StringColumn) -> IdLookup:
        hashes = id_hashes(ids)
        order = np.argsort(hashes, kind="stable")
        return cls(ids, hashes[order], order.astype(np.int64))

    def get(self, key: object, default: int | None = None) -> int | None:  # type: ignore[override]
        if not isinstance(key, str):
            return default
        row = self.rows_of([key])[0]
        return default if row is None else row

    def rows_of(self, keys: Sequence[str]) -> list[int | None]:
        """The row of each key (None if unknown): one vectorised search, then each hit's own text compared."""
        if not keys or not len(self.hashes):
            return [None] * len(keys)
        wanted = np.fromiter((_hash(k) for k in keys), dtype=np.uint64, count=len(keys))
        at = np.minimum(np.searchsorted(self.hashes, wanted), len(self.hashes) - 1)
        hit = self.hashes[at] == wanted
        rows = self.rows[at].tolist()
        found: list[int | None] = []
        for key, row, same, first in zip(keys, rows, hit.tolist(), at.tolist(), strict=True):
            if not same:
                found.append(None)
            elif self.ids[row] == key:
                found.append(row)
            else:  # another id with the same 64-bit hash (or the same id twice): the rest of the run
                found.append(self._along_run(key, first))
        return found

    def _along_run(self, key: str, start: int) -> int | None:
        """The row of ``key`` among the ids after ``start`` that share its hash."""
        for j in range(start + 1, len(self.hashes)):
            if self.hashes[j] != self.hashes[start]:
                break
            if self.ids[int(self.rows[j])] == key:
                return int(self.rows[j])
        return None

    def __getitem__(self, key: str) -> int:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def repeated(self) -> list[str]:
        """Ids that occur more than once (a pass over equal hashes only)."""
        same = np.flatnonzero(self.hashes[1:] == self.hashes[:-1])
        rows = {int(r) for j in same for r in (self.rows[j], self.rows[j + 1])}
        seen: dict[str, int] = {}
        for row in sorted(rows):
            seen[self.ids[row]] = seen.get(self.ids[row], 0) + 1
        return [key for key, count in seen.items() if count > 1]
