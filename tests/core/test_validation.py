"""Model validation: a consistent model passes; each kind of disagreement is refused and named."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

from reccore.columns import IdLookup, StringColumn
from reccore.encoding import npy_bytes, npy_load
from reccore.errors import ModelLoadError, ModelValidationError
from reccore.layout import Files, Manifest
from reccore.model import Model, build_model
from reccore.validation import probe_queries, structural_problems, validate_model


def _model(packaged: tuple[Manifest, dict[str, bytes]], **replace: bytes) -> Model:
    manifest, files = packaged
    return build_model(manifest, {**files, **replace})


def _user_ids(ids: list[str]) -> dict[str, bytes]:
    """The four user-id files for ``ids`` (a consistent column and lookup)."""
    column = StringColumn.of(ids)
    lookup = IdLookup.of(column)
    return {Files.USER_IDS: npy_bytes(column.data), Files.USER_ID_OFFSETS: npy_bytes(column.offsets),
            Files.USER_ID_HASHES: npy_bytes(lookup.hashes), Files.USER_ID_ROWS: npy_bytes(lookup.rows)}  # fmt: skip


def _array(packaged: tuple[Manifest, dict[str, bytes]], name: str) -> np.ndarray:
    return npy_load(packaged[1][name])


def test_a_published_model_passes(packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    model = _model(packaged)
    assert structural_problems(model) == [] and probe_queries(model) == []
    validate_model(model)


Change = Callable[[tuple[Manifest, dict[str, bytes]]], dict[str, bytes]]

CASES: dict[str, tuple[Change, str]] = {
    "item factors with fewer columns than the index": (
        lambda p: {Files.ITEM_FACTORS: npy_bytes(_array(p, Files.ITEM_FACTORS)[:, :2])},
        "item_factors.npy has shape",
    ),
    "user factors with more columns": (
        lambda p: {Files.USER_FACTORS: npy_bytes(np.hstack([_array(p, Files.USER_FACTORS)] * 2))},
        "user_factors.npy has shape",
    ),
    "singular values of another length": (
        lambda p: {Files.SINGULAR_VALUES: npy_bytes(np.ones(7, dtype=np.float32))},
        "singular_values.npy has shape (7,)",
    ),
    "a zero singular value": (
        lambda p: {Files.SINGULAR_VALUES: npy_bytes(np.zeros_like(_array(p, Files.SINGULAR_VALUES)))},
        "finite and positive",
    ),
    "history items as floats": (
        lambda p: {Files.HISTORY_ITEMS: npy_bytes(_array(p, Files.HISTORY_ITEMS).astype(np.float64))},
        "history_items.npy has dtype float64",
    ),
    "history pointing past the catalogue": (
        lambda p: {Files.HISTORY_ITEMS: npy_bytes(_array(p, Files.HISTORY_ITEMS) + 10_000)},
        "points outside",
    ),
    "a 3-column map": (
        lambda p: {Files.ITEM_MAP: npy_bytes(np.hstack([_array(p, Files.ITEM_MAP), _array(p, Files.ITEM_MAP)[:, :1]]))},
        "item_map.npy has shape",
    ),
    "invalid UTF-8 in an item title": (
        lambda p: {Files.TITLES: npy_bytes(np.concatenate([[0xFF], _array(p, Files.TITLES)[1:]]).astype(np.uint8))},
        "not valid UTF-8",
    ),
    "repeated user ids": (lambda p: _user_ids(["same"] * len(_array(p, Files.USER_ID_HASHES))), "ids repeat"),
    "id hashes that do not match the ids": (
        lambda p: {Files.ITEM_ID_HASHES: npy_bytes(np.sort(_array(p, Files.ITEM_ID_HASHES) + np.uint64(1)))},
        "does not match the ids",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_inconsistent_model_is_refused_naming_the_problem(
    packaged: tuple[Manifest, dict[str, bytes]], case: str
) -> None:
    change, expected = CASES[case]
    try:
        model = _model(packaged, **change(packaged))
    except ModelLoadError as exc:  # row counts are already checked while assembling the model
        pytest.fail(f"expected assembly to pass and validation to refuse, got {exc}")
    with pytest.raises(ModelValidationError, match="is refused") as raised:
        validate_model(model, thorough=True)  # what the pipeline runs before publishing
    assert expected in str(raised.value)


# What only a thorough check sees (the service's light check does not read every value).
THOROUGH_ONLY = ("history pointing past the catalogue", "invalid UTF-8 in an item title", "repeated user ids",
                 "id hashes that do not match the ids")  # fmt: skip
STRUCTURAL = [case for case in CASES if case not in THOROUGH_ONLY]


@pytest.mark.parametrize("case", STRUCTURAL)
def test_the_services_light_validation_still_refuses_a_structural_problem(
    packaged: tuple[Manifest, dict[str, bytes]], case: str
) -> None:
    change, expected = CASES[case]
    with pytest.raises(ModelValidationError, match=re.escape(expected)):
        validate_model(_model(packaged, **change(packaged)))


def test_the_light_validation_reads_no_factor_values(packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    factors = _array(packaged, Files.ITEM_FACTORS).copy()
    factors[3, 1] = np.nan  # a value only a full scan finds (the pipeline's thorough check, before publishing)
    model = _model(packaged, **{Files.ITEM_FACTORS: npy_bytes(factors)})
    assert structural_problems(model, thorough=False) == []
    assert "item_factors.npy holds non-finite values" in structural_problems(model, thorough=True)


def test_a_failing_query_path_refuses_the_model(
    packaged: tuple[Manifest, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import reccore.validation as validation

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("index corrupt")

    monkeypatch.setattr(validation, "similar_items", broken)
    model = _model(packaged)
    assert structural_problems(model) == []
    with pytest.raises(ModelValidationError, match="similar query failed: RuntimeError: index corrupt"):
        validate_model(model)
