"""MovieLens-100K, read from the files the ``recbole==1.2.1`` wheel ships.

The data's licence forbids redistribution, so it is read in place from site-packages
and never copied into this repository. recbole's ``__init__`` imports torch, so the
package directory is located with :func:`importlib.util.find_spec`, which finds a
top-level package without executing it; no recbole module is ever imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data import InteractionLog
from reccore.errors import DataSourceError

INSTALL_HINT = "pip install --no-deps recbole==1.2.1"
DATA_DIR = "dataset_example/ml-100k"


def data_dir() -> Path:
    """The ``ml-100k`` directory inside the installed recbole package.

    Raises
    ------
    DataSourceError
        If recbole is not installed or its wheel lacks the MovieLens files.
    """
    spec = importlib.util.find_spec("recbole")  # top-level: finds, does not import
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError(f"movielens-100k: the recbole package is not installed; run `{INSTALL_HINT}`")
    for location in spec.submodule_search_locations:
        directory = Path(location) / DATA_DIR
        if (directory / "ml-100k.inter").is_file() and (directory / "ml-100k.item").is_file():
            return directory
    raise DataSourceError(
        f"movielens-100k: {DATA_DIR}/ml-100k.inter or .item not found in the installed recbole; run `{INSTALL_HINT}`"
    )


def _read_atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file: tab-separated, ``name:type`` headers."""
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf-8")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"{path}: cannot read RecBole atomic file ({exc})") from exc
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    return frame


def load_movielens_100k() -> InteractionLog:
    """Load MovieLens-100K: 100,000 ratings by 943 users of 1,682 movies.

    Ratings (1-5) are the weights, all with event type ``"rating"``. An item's category is
    its first genre, lower-cased; ``extra["genres"]`` keeps every genre per item. Titles
    are ``"<title> (<year>)"`` and prices are 0 (the data has none).

    Returns
    -------
    InteractionLog
        ``source="movielens-100k"``, rows in file order.

    Raises
    ------
    DataSourceError
        If recbole is not installed, or the files do not have the expected columns.
    """
    directory = data_dir()
    inter = _read_atomic(directory / "ml-100k.inter")
    movies = _read_atomic(directory / "ml-100k.item")
    for frame, name, columns in (
        (inter, "ml-100k.inter", ("user_id", "item_id", "rating", "timestamp")),
        (movies, "ml-100k.item", ("item_id", "movie_title", "release_year", "class")),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataSourceError(f"{directory / name}: missing column(s) {missing}")

    item_ids = movies["item_id"].to_numpy(dtype=str)
    item_codes = pd.Index(item_ids).get_indexer(inter["item_id"])
    if (item_codes < 0).any():
        raise DataSourceError(f"{directory / 'ml-100k.inter'}: ratings refer to movies missing from ml-100k.item")
    user_codes, user_ids = pd.factorize(inter["user_id"])
    genres = movies["class"].str.split()
    year = movies["release_year"].str.strip()
    titles = movies["movie_title"].where(year == "", movies["movie_title"] + " (" + year + ")")

    log = InteractionLog(
        user_ids=user_ids.to_numpy(dtype=str),
        item_ids=item_ids,
        users=user_codes.astype(np.int32),
        items=item_codes.astype(np.int32),
        weights=inter["rating"].astype(np.float32).to_numpy(),
        timestamps=inter["timestamp"].astype(np.float64).to_numpy().astype(np.int64),
        events=np.zeros(len(inter), dtype=np.int8),
        event_types=["rating"],
        titles=titles.tolist(),
        categories=[g[0].lower() if g else "unknown" for g in genres],
        prices=np.zeros(len(item_ids)),
        source="movielens-100k",
        extra={"genres": [" ".join(g).lower() for g in genres], "data_dir": str(directory)},
    )
    log.validate()
    return log
