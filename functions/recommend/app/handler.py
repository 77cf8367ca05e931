"""The Lambda entry point: the app behind Mangum, built once per execution environment.

``lifespan="off"``: Mangum would run the ASGI lifespan on every invocation (Kludex/mangum#342);
the model is loaded lazily by the first request instead. No ``api_gateway_base_path``: the
stage prefix is read from each event (``app.middleware.RootPathMiddleware``), so the same
image serves ``sam local`` / ``$default`` paths (``/health``) and named stages (``/prod/health``).
"""

from __future__ import annotations

from mangum import Mangum

from app.main import app

handler = Mangum(app, lifespan="off")
