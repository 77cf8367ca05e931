"""The process-wide model holder: lazy first load, periodic hot swap, and graceful failure.

Importing this module touches no S3. The first request that needs a model loads it
(under a lock, so concurrent first requests load once). Afterwards, at most every
``REC_REFRESH_SECONDS`` one request reads ``LATEST`` (one small GET) and, if it names
another version, loads that version and swaps the reference. A request keeps the
:class:`Model` object it started with, so a swap never changes a response mid-flight.
A version that fails to load is remembered and not downloaded again before its retry
time; the old model keeps serving meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.logging import logger
from app.views import views
from reccore.artifacts import read_latest_version
from reccore.errors import ModelLoadError, RecError
from reccore.model import Model, load_model
from reccore.settings import ServiceSettings, get_service_settings
from reccore.storage import ArtifactStore, open_store

# With no model loaded, every request would otherwise hit S3; one attempt per second is plenty.
MIN_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Acquired:
    """The model a request works with, and whether this request loaded the environment's first model."""

    model: Model
    cold_start: bool


class ModelRegistry:
    """Holds the current :class:`Model`; thread-safe; see the module docstring for the policy."""

    def __init__(
        self,
        settings: Callable[[], ServiceSettings] = get_service_settings,
        clock: Callable[[], float] = time.monotonic,
        prepare: Callable[[Model], object] | None = None,
    ) -> None:
        self._settings = settings
        self._prepare = prepare  # per-model tables, built before the swap so no request pays for them
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the model, the store and every failure (tests; a changed ``REC_MODEL_URI``)."""
        with self._lock:
            self._model: Model | None = None
            self._store: ArtifactStore | None = None
            self._store_uri = ""
            self._next_check = 0.0  # monotonic time from which a request re-reads LATEST
            self._retry_at = 0.0  # with no model: monotonic time of the next load attempt
            self._last_error: RecError | None = None
            self._bad_versions: dict[str, float] = {}  # version -> monotonic time it may be retried
            self.loads = 0  # successful loads, for tests and logs

    @property
    def model(self) -> Model | None:
        """The current model without any I/O (``None`` before the first successful load)."""
        return self._model

    def fresh(self) -> Model | None:
        """The current model if no check of LATEST is due: the lock-free fast path of every request."""
        model = self._model
        if model is not None and self._clock() < self._next_check:
            return model
        return None

    def acquire(self) -> Acquired:
        """The model to serve with, loading or refreshing it first if due (blocking I/O).

        Raises
        ------
        RecError
            No model is loaded and loading one failed (or failed less than a second ago).
        """
        current = self._model
        if current is not None:
            # Never queue behind a reload: whoever holds the lock is already refreshing.
            if not self._lock.acquire(blocking=False):
                return Acquired(current, cold_start=False)
            try:
                self._refresh_locked()
                return Acquired(self._model or current, cold_start=False)
            finally:
                self._lock.release()
        with self._lock:
            if self._model is not None:  # another thread loaded it while we waited
                return Acquired(self._model, cold_start=False)
            return Acquired(self._first_load_locked(), cold_start=self.loads == 1)

    # --- under the lock -------------------------------------------------------------

    def _first_load_locked(self) -> Model:
        now = self._clock()
        if self._last_error is not None and now < self._retry_at:
            raise self._last_error
        try:
            model = self._load(version=None)
        except RecError as exc:
            self._last_error = exc
            self._retry_at = now + MIN_RETRY_SECONDS
            logger.warning("model load failed", extra={"reason": str(exc), "uri": self._settings().model_uri})
            raise
        self._install(model, now)
        return model

    def _refresh_locked(self) -> None:
        now = self._clock()
        if now < self._next_check:
            return
        settings = self._settings()
        self._next_check = now + settings.refresh_seconds
        current = self._model
        assert current is not None
        try:
            latest = read_latest_version(self._get_store())
        except Exception as exc:  # noqa: BLE001 - a failed check must not fail requests the old model can serve
            logger.warning("LATEST check failed; serving the current model", extra={"reason": repr(exc)})
            return
        if latest == current.version or now < self._bad_versions.get(latest, 0.0):
            return
        try:
            model = self._load(version=latest)
        except RecError as exc:
            self._bad_versions[latest] = now + max(settings.refresh_seconds, MIN_RETRY_SECONDS)
            logger.error(
                "new model version is broken; still serving the current one",
                extra={"bad_version": latest, "serving_version": current.version, "reason": str(exc)},
            )
            return
        self._install(model, now)
        logger.info("model swapped", extra={"old_version": current.version, "new_version": model.version})

    def _install(self, model: Model, now: float) -> None:
        self._model = model  # one reference assignment: atomic for readers
        self._next_check = now + self._settings().refresh_seconds
        self._last_error = None
        self._bad_versions.pop(model.version, None)
        self.loads += 1
        logger.info("model loaded", extra={"model_version": model.version, "loads": self.loads})

    def _get_store(self) -> ArtifactStore:
        uri = self._settings().model_uri
        if self._store is None or uri != self._store_uri:
            self._store, self._store_uri = open_store(uri), uri
        return self._store

    def _load(self, version: str | None) -> Model:
        settings = self._settings()
        try:
            model = load_model(self._get_store(), version=version, cache_dir=settings.cache_dir)
            if self._prepare is not None:
                self._prepare(model)
            return model
        except RecError:
            raise
        except Exception as exc:
            # S3 outages, access denied, disk full: a 503 naming the cause (and the old model kept), not a 500.
            raise ModelLoadError(
                f"cannot load the model from {settings.model_uri}: {type(exc).__name__}: {exc}"
            ) from exc


registry = ModelRegistry(prepare=views)
