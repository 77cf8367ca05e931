"""Typed dependencies of the routes (override them in tests with ``app.dependency_overrides``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.registry import registry
from reccore.model import Model


async def get_model(request: Request) -> Model:
    """The model this request works with from start to finish (loads or refreshes it when due)."""
    model = registry.fresh()
    cold_start = False
    if model is None:
        # Loading and the LATEST check block on S3: off the event loop, so uvicorn keeps serving.
        acquired = await run_in_threadpool(registry.acquire)
        model, cold_start = acquired.model, acquired.cold_start
    request.state.model_version = model.version
    request.state.cold_start = cold_start
    return model


ModelDep = Annotated[Model, Depends(get_model)]
