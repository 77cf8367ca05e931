"""The catalogue: item pages and search, the 2-D map, one item, similar items, categories."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Query

from app.deps import ModelDep
from app.routes.recommend import scored_items
from app.schemas.catalogue import Category, CategoryList, Item, ItemDetail, ItemMap, ItemPage, MapPoint, SimilarResponse
from app.schemas.common import (
    COMMON_ERRORS,
    MAX_IDS,
    MAX_K,
    MAX_MAP_SAMPLE,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_TEXT,
    error_responses,
)
from app.views import item_search, views
from reccore.errors import UnknownItemError
from reccore.model import Model
from reccore.scoring import similar_items

router = APIRouter(tags=["items"], responses=COMMON_ERRORS)
_ERRORS_404 = error_responses(404)

DEFAULT_MAP_SAMPLE = 2_000

ItemIdPath = Annotated[str, Path(max_length=1024, description="An item id from the catalogue.")]


def item_position(model: Model, item_id: str) -> int:
    """The catalogue position of ``item_id``; :class:`UnknownItemError` (404) if there is none."""
    position = model.item_index.get(item_id)
    if position is None:
        raise UnknownItemError(f"unknown item id {item_id[:MAX_TEXT]!r}: not in model {model.version}")
    return position


def _item(model: Model, i: int) -> Item:
    return Item(
        item_id=model.item_ids[i],
        title=model.titles[i],
        category=model.categories[i],
        price=float(str(model.prices[i])),  # float32's shortest repr: 10.54, not 10.539999961853027
        content_based=bool(model.content_based[i]),
    )


@router.get("/items", response_model=ItemPage)
async def list_items(
    model: ModelDep,
    category: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    q: Annotated[
        str | None, Query(max_length=MAX_TEXT, description="Case-insensitive substring of id or title.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ItemPage:
    """A page of the catalogue, most popular first, optionally by category and search text."""
    tables = views(model)
    if category is not None:
        matches = tables.category_items.get(category, np.empty(0, dtype=np.int64))
    else:
        matches = model.popular_order
    if q:
        found = np.zeros(model.n_items, dtype=bool)
        found[item_search(model).search(q)] = True
        matches = matches[found[matches]]
    page = matches[offset : offset + limit].tolist()
    return ItemPage(
        model_version=model.version,
        total=len(matches),
        limit=limit,
        offset=offset,
        items=[_item(model, i) for i in page],
    )


@router.get("/items/map", response_model=ItemMap)
async def item_map(
    model: ModelDep,
    sample: Annotated[int, Query(ge=1, le=MAX_MAP_SAMPLE)] = DEFAULT_MAP_SAMPLE,
    ids: Annotated[list[Annotated[str, Query(max_length=MAX_TEXT)]], Query(max_length=MAX_IDS)] = [],  # noqa: B006
) -> ItemMap:
    """2-D coordinates of a deterministic (seeded) sample of items, plus any listed ``ids``, for the map."""
    chosen = views(model).map_order[:sample].tolist()
    extra = {model.item_index[i] for i in ids if i in model.item_index}.difference(chosen)
    chosen += sorted(extra)
    coords = model.item_map[chosen].astype(np.float64).tolist() if chosen else []
    points = [
        MapPoint(
            item_id=model.item_ids[i],
            title=model.titles[i],
            x=x,
            y=y,
            category=model.categories[i],
            content_based=bool(model.content_based[i]),
        )
        for i, (x, y) in zip(chosen, coords, strict=True)
    ]
    return ItemMap(model_version=model.version, total=model.n_items, points=points)


@router.get("/items/{item_id}", response_model=ItemDetail, responses=_ERRORS_404)
async def get_item(item_id: ItemIdPath, model: ModelDep) -> ItemDetail:
    """One item with its popularity rank and interaction count."""
    i = item_position(model, item_id)
    return ItemDetail(
        **_item(model, i).model_dump(),
        model_version=model.version,
        popularity_rank=int(views(model).popularity_rank[i]),
        n_interactions=int(views(model).item_counts[i]),
    )


@router.get("/items/{item_id}/similar", response_model=SimilarResponse, responses=_ERRORS_404)
async def similar(
    item_id: ItemIdPath, model: ModelDep, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10
) -> SimilarResponse:
    """The k nearest items by cosine (the item itself excluded); cold items use their content vector."""
    i = item_position(model, item_id)
    ranking = similar_items(model, i, k)
    return SimilarResponse(
        item_id=item_id,
        model_version=model.version,
        content_based=bool(model.content_based[i]),
        items=scored_items(model, ranking),
    )


@router.get("/categories", response_model=CategoryList)
async def categories(model: ModelDep) -> CategoryList:
    """Every category with its number of items."""
    counts = views(model).category_counts
    return CategoryList(
        model_version=model.version, categories=[Category(name=n, n_items=counts[n]) for n in model.category_names]
    )
