"""Liveness with the model's identity: ``GET /`` and ``GET /health``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import faiss
from fastapi import APIRouter, Request

from app.deps import ModelDep
from app.registry import registry
from app.schemas.catalogue import Health
from app.schemas.common import COMMON_ERRORS

router = APIRouter(tags=["health"], responses=COMMON_ERRORS)
# The hyperparameters /health shows (the manifest's params also hold the seed, source, ...).
_MODEL_PARAMS = ("factors", "weighting", "scaling", "shrinkage", "pop_alpha", "min_rating", "centre")


@lru_cache(maxsize=1)
def faiss_simd_level() -> str:
    """The SIMD level FAISS dispatches to (runtime-dispatch builds), else its compile options."""
    config = getattr(faiss, "SIMDConfig", None)
    if config is not None and hasattr(config, "get_level_name"):
        return str(config.get_level_name())
    return str(faiss.get_compile_options()).strip()


def model_params(params: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of the manifest's ``params``, each once: the weighting as its scheme's name (the
    manifest's weighting also holds fold-in's copy of min_rating and centre, and its row-length statistic)."""
    shown = {name: params[name] for name in _MODEL_PARAMS if name in params}
    if isinstance(shown.get("weighting"), dict):
        shown["weighting"] = shown["weighting"].get("scheme")
    return shown


@router.get("/", response_model=Health, operation_id="root")
@router.get("/health", response_model=Health, operation_id="health")
async def health(request: Request, model: ModelDep) -> Health:
    """Status, identity and staleness of the model in use; loads it if needed (503 if that fails)."""
    manifest = model.manifest
    stale = registry.stale_reason
    return Health(
        status="ok",
        stale=stale is not None,
        stale_reason=stale,
        model_version=model.version,
        model_created_at=manifest.created_at,
        n_items=model.n_items,
        n_users=model.n_users,
        index_type=manifest.index.type,
        index_params=manifest.index.params,
        index_recall_at_10=manifest.index.recall_at_10,
        index_filtered_recall_at_10=manifest.index.filtered_recall_at_10,
        dims=manifest.index.dims,
        loaded_at=model.loaded_at,
        first_load=bool(getattr(request.state, "first_load", False)),
        faiss_simd=faiss_simd_level(),
        model_params=model_params(manifest.params),
        tuned=bool(manifest.params.get("tuned", False)),
        split=manifest.params.get("split"),
    )
