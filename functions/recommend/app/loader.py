"""Loading one model version for the registry: fetched, checked and made ready, or a :class:`RecError`.

A first load takes only what the first answer needs; a swap (``whole``) fetches every deferred part and
builds the routes' tables before the version goes live. :func:`prepare` is what a model needs after its
first answer. Any failure is a :class:`RecError` (a 503 with its reason; the old model keeps serving).
"""

from __future__ import annotations

from collections.abc import Callable

from app.logging import logger
from app.views import views
from reccore.errors import ModelLoadError, RecError
from reccore.loading import load_model
from reccore.model import Model
from reccore.settings import ServiceSettings
from reccore.storage import ArtifactStore


def load_checked(
    store: Callable[[], ArtifactStore],
    settings: ServiceSettings,
    version: str | None,
    progress: Callable[[str], None],
    validate: Callable[[Model], None],
    prepare: Callable[[Model], object] | None,
    whole: bool,
) -> Model:
    """``version`` (``None``: LATEST's) loaded from ``store()`` and validated; with ``whole``, its deferred parts
    fetched first (any missing one refuses the version) and ``prepare`` run on it."""
    try:
        model = load_model(store(), version=version, cache_dir=settings.cache_dir, progress=progress)
        if whole:  # a swap: the whole version is fetched and checked before it goes live
            failures = model.parts.prefetch()
            if failures:
                raise ModelLoadError(f"model {model.version} is refused: " + "; ".join(failures.values()))
        validate(model)
        progress("validate")
        if prepare is not None:  # a swap: built before it, so no request pays for them
            prepare(model)
        return model
    except RecError:
        raise
    except Exception as exc:
        # S3 outages, access denied, disk full: a 503 (the cause logged) and the old model kept, not a 500.
        raise ModelLoadError(f"cannot load the model from {settings.model_uri}: {type(exc).__name__}: {exc}") from exc


def prepare(model: Model) -> None:
    """What a model needs beyond its first answer: the routes' tables, then its deferred parts (item vectors,
    similar-items index, map; see :class:`reccore.model.Parts`), so that no later request waits for them."""
    views(model)
    failures = model.parts.prefetch()
    if failures:  # each is fetched again by the first request that needs it
        logger.warning("model parts not fetched", extra={"reason": "; ".join(failures.values())})
