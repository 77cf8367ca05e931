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
    if model is None:
        # Loading and the LATEST check block on S3: off the event loop, so uvicorn keeps serving.
        model = await run_in_threadpool(registry.acquire)
    request.state.model_version = model.version
    # The first request answered with this environment's first model, whichever request started the load.
    request.state.first_load = registry.claim_first_load()
    return model


ModelDep = Annotated[Model, Depends(get_model)]
