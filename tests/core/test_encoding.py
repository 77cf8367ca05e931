"""Encoding a model's files and decoding them back: every array and column intact, with or without the per-user
files, and no pickle anywhere."""

from __future__ import annotations

import io

import numpy as np
import pytest

from reccore.encoding import decode, encode
from reccore.errors import ModelLoadError
from reccore.layout import Files, Manifest
from reccore.model import build_model
from tests.core.conftest import _npy, tiny_contents


def test_arrays_are_written_without_pickle(packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    for name, data in packaged[1].items():
        if name.endswith(".npy"):
            array = np.load(_npy(data), allow_pickle=False)
            assert array.dtype != object, name


def test_encode_then_decode_gives_back_every_file_without_the_pipeline() -> None:
    original = tiny_contents()
    decoded = decode(encode(original))
    for name in Files.ARRAYS:
        np.testing.assert_array_equal(decoded.arrays[name], original.arrays[name])
        assert decoded.arrays[name].dtype == original.arrays[name].dtype, name
    assert list(decoded.user_ids) == list(original.user_ids)
    assert list(decoded.items.item_id) == list(original.items.item_id)
    assert list(decoded.items.title) == list(original.items.title)
    assert list(decoded.items.category) == list(original.items.category)
    assert decoded.item_index is not None and decoded.item_index["i4"] == 4 and "i9" not in decoded.item_index
    np.testing.assert_allclose(decoded.items.price, original.items.price)
    assert decoded.index_ip is not None and decoded.index_cos is not None
    assert decoded.index_ip.ntotal == decoded.index_cos.ntotal == 6


def test_decode_rejects_a_pickled_array() -> None:
    files = encode(tiny_contents())
    # An object-dtype .npy (what np.save writes for pickled objects), built from its header alone: nothing here
    # pickles, and the reader must refuse the file on its dtype before reading any payload.
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    files[Files.POPULARITY] = buffer.getvalue() + b"\x80\x04payload"
    with pytest.raises(ModelLoadError):
        decode(files)


def test_both_modes_keep_the_same_item_side(
    packaged: tuple[Manifest, dict[str, bytes]], packaged_item_side: tuple[Manifest, dict[str, bytes]]
) -> None:
    with_users, item_side = build_model(*packaged), build_model(*packaged_item_side)
    assert with_users.n_users == 40 and item_side.n_users == 0
    assert packaged[0].user_arrays is True and packaged[0].data["user_arrays"] is True
    np.testing.assert_allclose(item_side.item_factors, with_users.item_factors, rtol=1e-5, atol=1e-6)
    assert list(item_side.item_ids) == list(with_users.item_ids)


def test_partial_per_user_files_are_rejected(packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    files = {k: v for k, v in packaged[1].items() if k != Files.HISTORY_TIMES}
    with pytest.raises(ModelLoadError, match=r"history_times\.npy"):
        decode(files)
