"""Builds the FastAPI app: middleware, error handlers, routers. Nothing here touches S3."""

from __future__ import annotations

from fastapi import FastAPI

from app.errors import install_error_handlers
from app.logging import RequestLogMiddleware, logger
from app.middleware import (
    BodyLimitMiddleware,
    DeadlineMiddleware,
    JsonCORSMiddleware,
    RootPathMiddleware,
    Utf8RequestMiddleware,
)
from app.routes import routers
from reccore.settings import get_service_settings

DESCRIPTION = "Hybrid recommendations (truncated SVD + FAISS) for known users, anonymous sessions and cold items."


def create_app() -> FastAPI:
    """A new app configured from the current ``REC_*`` settings."""
    settings = get_service_settings()
    logger.setLevel(settings.log_level.upper())
    docs = settings.docs_enabled  # off: /docs, /redoc and /openapi.json are unknown routes (a JSON 404)
    app = FastAPI(
        title="Recommend API",
        version="1.0",
        description=DESCRIPTION,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    # add_middleware wraps: the last added runs first. Order on the way in: log, CORS, UTF-8, root path, body limit,
    # deadline (it starts when the request reaches the app, and covers the model, the store and the log).
    app.add_middleware(DeadlineMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RootPathMiddleware)
    app.add_middleware(Utf8RequestMiddleware)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    app.add_middleware(
        JsonCORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["content-type"],
        max_age=600,
    )
    app.add_middleware(RequestLogMiddleware)
    return app


app = create_app()
