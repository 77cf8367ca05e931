"""The catalogue routes: /items, /items/map, /items/{id}, /items/{id}/similar, /categories."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.registry import registry
from app.schemas.catalogue import CategoryList, ItemDetail, ItemMap, ItemPage, SimilarResponse
from app.schemas.common import MAX_MAP_SAMPLE
from reccore.model import Model


def _model(client: Any) -> Model:
    assert client.get("/health").status_code == 200
    assert registry.model is not None
    return registry.model


def test_items_page_is_bounded_and_most_popular_first(client: Any) -> None:
    model = _model(client)
    page = ItemPage.model_validate(client.get("/items", params={"limit": 5, "offset": 2}).json())
    assert page.total == model.n_items and page.limit == 5 and page.offset == 2
    assert [item.item_id for item in page.items] == [model.item_ids[i] for i in model.popular_order[2:7]]
    assert len(client.get("/items").json()["items"]) == 20


def test_items_by_category(client: Any) -> None:
    model = _model(client)
    category = model.category_names[4]
    body = client.get("/items", params={"category": category, "limit": 100}).json()
    assert body["total"] == int((model.category_codes == 4).sum())
    assert {item["category"] for item in body["items"]} == {category}
    assert client.get("/items", params={"category": "nope"}).json()["total"] == 0


def test_items_search_matches_title_or_id_case_insensitively(client: Any) -> None:
    model = _model(client)
    word = model.titles[0].split()[-1]
    body = client.get("/items", params={"q": word.upper(), "limit": 100}).json()
    expected = sum(
        word.lower() in t.lower() or word.lower() in i for i, t in zip(model.item_ids, model.titles, strict=True)
    )
    assert body["total"] == expected > 0
    assert all(word.lower() in item["title"].lower() for item in body["items"])
    by_id = client.get("/items", params={"q": model.item_ids[7]}).json()
    assert model.item_ids[7] in {item["item_id"] for item in by_id["items"]}
    combined = client.get("/items", params={"q": word, "category": model.categories[0], "limit": 100}).json()
    assert {item["category"] for item in combined["items"]} == {model.categories[0]}


def test_items_search_does_not_match_across_fields(client: Any) -> None:
    model = _model(client)
    spanning = model.item_ids[0][-2:] + model.titles[0][:3]  # end of the id + start of the title
    body = client.get("/items", params={"q": spanning}).json()
    assert model.item_ids[0] not in {item["item_id"] for item in body["items"]}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}, {"q": "q" * 201}])
def test_items_rejects_bad_paging(client: Any, params: dict[str, Any]) -> None:
    response = client.get("/items", params=params)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"


def test_map_sample_is_deterministic_and_bounded(client: Any) -> None:
    model = _model(client)
    first = ItemMap.model_validate(client.get("/items/map", params={"sample": 50}).json())
    again = client.get("/items/map", params={"sample": 50}).json()
    assert len(first.points) == 50 and first.total == model.n_items
    assert [p.item_id for p in first.points] == [p["item_id"] for p in again["points"]]
    point = first.points[0]
    i = model.item_index[point.item_id]
    assert (point.x, point.y) == pytest.approx(tuple(model.item_map[i].tolist()))
    everything = client.get("/items/map", params={"sample": MAX_MAP_SAMPLE}).json()
    assert len(everything["points"]) == model.n_items
    for bad in (0, MAX_MAP_SAMPLE + 1, "many"):
        assert client.get("/items/map", params={"sample": bad}).status_code == 422


def test_map_adds_requested_ids_to_the_sample(client: Any) -> None:
    model = _model(client)
    sampled = {p["item_id"] for p in client.get("/items/map", params={"sample": 5}).json()["points"]}
    wanted = [i for i in model.item_ids[:40] if i not in sampled][:3]
    points = client.get("/items/map", params={"sample": 5, "ids": [*wanted, "no-such-item"]}).json()["points"]
    assert {p["item_id"] for p in points} == sampled | set(wanted)
    assert all(p["title"] == model.titles[model.item_index[p["item_id"]]] for p in points)
    too_many = client.get("/items/map", params={"ids": ["x"] * 201})
    assert too_many.status_code == 422


def test_item_detail(client: Any) -> None:
    model = _model(client)
    top = model.item_ids[model.popular_order[0]]
    detail = ItemDetail.model_validate(client.get(f"/items/{top}").json())
    assert detail.popularity_rank == 1
    assert detail.n_interactions == int(np.count_nonzero(model.history_items == model.item_index[top]))
    assert detail.model_version == model.version


@pytest.mark.parametrize("item_id", ["nope", "%C3%A9t%C3%A9", "i" * 1000, "%00", "..%2F..%2Fetc"])
def test_unknown_item_is_404(client: Any, item_id: str) -> None:
    for path in (f"/items/{item_id}", f"/items/{item_id}/similar"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] in ("unknown_item", "not_found")


def test_similar_items_by_cosine_without_the_item_itself(client: Any) -> None:
    model = _model(client)
    item = model.item_ids[model.popular_order[5]]
    body = SimilarResponse.model_validate(client.get(f"/items/{item}/similar", params={"k": 8}).json())
    assert len(body.items) == 8 and body.content_based is False
    assert item not in {s.item_id for s in body.items}
    scores = [s.score for s in body.items if s.score is not None]
    assert len(scores) == len(body.items)  # similar items all have a cosine
    assert scores == sorted(scores, reverse=True) and max(scores) <= 1.0 + 1e-5
    q = model.item_factors[model.item_index[item]]
    first = model.item_factors[model.item_index[body.items[0].item_id]]
    cosine = float(q @ first / np.linalg.norm(q) / np.linalg.norm(first))
    assert body.items[0].score == pytest.approx(cosine, abs=1e-4)


def test_similar_works_for_a_cold_content_only_item(client: Any) -> None:
    model = _model(client)
    cold = model.item_ids[int(np.flatnonzero(model.content_based)[0])]
    body = client.get(f"/items/{cold}/similar", params={"k": 5}).json()
    assert body["content_based"] is True
    assert len(body["items"]) == 5 and cold not in {s["item_id"] for s in body["items"]}


@pytest.mark.parametrize("k", [0, 101, -1, "ten"])
def test_similar_rejects_bad_k(client: Any, k: Any) -> None:
    model = _model(client)
    assert client.get(f"/items/{model.item_ids[0]}/similar", params={"k": k}).status_code == 422


def test_categories_cover_the_catalogue(client: Any) -> None:
    model = _model(client)
    body = CategoryList.model_validate(client.get("/categories").json())
    assert [c.name for c in body.categories] == model.category_names
    assert sum(c.n_items for c in body.categories) == model.n_items
