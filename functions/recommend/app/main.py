"""Builds the FastAPI app: middleware, error handlers, routers. Nothing here touches S3."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

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

TITLE, VERSION = "Recommend API", "1.0"
DOCS_ASSETS = "/docs/assets"
DESCRIPTION = "Hybrid recommendations (truncated SVD + FAISS) for known users, anonymous sessions and cold items."


def create_app() -> FastAPI:
    """A new app configured from the current ``REC_*`` settings."""
    settings = get_service_settings()
    logger.setLevel(settings.log_level.upper())
    if settings.docs_enabled:
        # Swagger UI and ReDoc from files in the image (fastapi-offline), not a CDN: they work offline and
        # behind a firewall. Under the /docs prefix, so one gateway route ("/docs/{proxy+}") serves them.
        app = FastAPIOffline(static_url=DOCS_ASSETS, title=TITLE, version=VERSION, description=DESCRIPTION)
    else:  # /docs, /redoc, /openapi.json and the assets are unknown routes (a JSON 404)
        app = FastAPI(
            title=TITLE, version=VERSION, description=DESCRIPTION, docs_url=None, redoc_url=None, openapi_url=None
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
