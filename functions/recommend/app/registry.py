"""The process-wide model holder: lazy first load, periodic hot swap, and graceful failure.

Importing this module touches no S3. The first request that needs a model starts loading it
(once, however many requests arrive together). Afterwards, at most every ``REC_REFRESH_SECONDS``
one request reads ``LATEST`` (one small GET) and, if it names another version, loads, validates
(:func:`reccore.validation.validate_model`) and swaps it in. A request keeps the :class:`Model`
object it started with, so a swap never changes a response mid-flight.

Loads and checks run in a background thread, and a request waits for them at most
``REC_LOAD_WAIT_SECONDS``: with no model yet it then answers 503 (the load goes on), and with a model
it serves the current one. So a stalled S3 costs a request seconds, never the Lambda timeout
(15 s in template.yaml). A version that fails to load or validate is remembered and retried only
with exponential backoff; meanwhile the old model keeps serving and ``/health`` reports it as stale.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

from app.logging import logger
from app.views import views
from reccore.artifacts import read_latest_version
from reccore.deadline import bounded
from reccore.errors import ModelLoadError, ModelNotFoundError, ModelNotReadyError, RecError
from reccore.model import Model, load_model
from reccore.settings import ServiceSettings, get_service_settings
from reccore.storage import ArtifactStore, S3Timeouts, open_store
from reccore.validation import validate_model

# With no model loaded, every request would otherwise hit S3; one attempt per second is plenty.
MIN_RETRY_SECONDS = 1.0
# A refused version is retried after max(refresh, 1 s) · 2^(failures-1), capped here.
MAX_BACKOFF_SECONDS = 3600.0

StaleReason = Literal["store_unreachable", "version_refused", "nothing_published"]


@dataclass(frozen=True)
class Acquired:
    """The model a request works with, and whether this request loaded the environment's first model."""

    model: Model
    cold_start: bool


@dataclass(frozen=True)
class _Refused:
    failures: int
    retry_at: float


class ModelRegistry:
    """Holds the current :class:`Model`; thread-safe; see the module docstring for the policy."""

    def __init__(
        self,
        settings: Callable[[], ServiceSettings] = get_service_settings,
        clock: Callable[[], float] = time.monotonic,
        prepare: Callable[[Model], object] | None = None,
        validate: Callable[[Model], None] = validate_model,
    ) -> None:
        self._settings = settings
        self._prepare = prepare  # per-model tables, built before the swap so no request pays for them
        self._validate = validate
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget the model, the store and every failure (tests; a changed ``REC_MODEL_URI``)."""
        with self._lock:
            self._generation += 1  # a background job of an older generation installs nothing
            self._model: Model | None = None
            self._store: ArtifactStore | None = None
            self._store_uri = ""
            self._pending: Future[Model | None] | None = None  # the load or check in progress
            self._next_check = 0.0  # monotonic time from which a request re-reads LATEST
            self._retry_at = 0.0  # with no model: monotonic time of the next load attempt
            self._last_error: RecError | None = None
            self._bad_versions: dict[str, _Refused] = {}
            self._stale: StaleReason | None = None
            self.loads = 0  # successful loads, for tests and logs

    @property
    def model(self) -> Model | None:
        """The current model without any I/O (``None`` before the first successful load)."""
        return self._model

    @property
    def stale_reason(self) -> StaleReason | None:
        """Why the served model may not be the newest published one (``None``: the last check agreed)."""
        return self._stale

    def fresh(self) -> Model | None:
        """The current model if no check of LATEST is due: the lock-free fast path of every request."""
        model = self._model
        if model is not None and self._clock() < self._next_check:
            return model
        return None

    def acquire(self) -> Acquired:
        """The model to serve with, loading or refreshing it first if due (waits at most the load wait).

        Raises
        ------
        RecError
            No model is loaded and loading one failed (or failed less than a second ago), or did
            not finish within ``REC_LOAD_WAIT_SECONDS`` (:class:`ModelNotReadyError`).
        """
        wait = self._settings().load_wait_seconds
        current = self._model
        if current is not None:
            with self._lock:
                now = self._clock()
                # Never queue behind a check another request started: serve the current model.
                if now < self._next_check or self._pending is not None:
                    return Acquired(self._model or current, cold_start=False)
                self._next_check = now + self._settings().refresh_seconds
                job = self._start(self._refresh, current)
            check_wait = bounded(wait)  # a model is at hand: the check gets no more than the request's deadline
            try:
                job.result(timeout=check_wait)
            except FutureTimeout:
                logger.warning("LATEST check still running; serving the current model", extra={"wait_s": check_wait})
            return Acquired(self._model or current, cold_start=False)
        with self._lock:
            if self._model is not None:  # loaded while we waited for the lock
                return Acquired(self._model, cold_start=False)
            pending, started = self._pending, False
            if pending is None:
                if self._last_error is not None and self._clock() < self._retry_at:
                    raise self._last_error
                pending, started = self._start(self._first_load, None), True
            job = pending
        try:
            model = job.result(timeout=wait)
        except FutureTimeout:
            raise ModelNotReadyError(f"the model store did not answer within {wait:g} s") from None
        if model is None:  # cannot happen for a first load; kept for the type checker
            raise ModelNotReadyError("no model loaded yet")
        return Acquired(model, cold_start=started)

    # --- background jobs ------------------------------------------------------------

    def _start(self, work: Callable[[int, Model | None], Model | None], current: Model | None) -> Future[Model | None]:
        """Run ``work`` in a daemon thread (called under the lock); its future is the pending job."""
        future: Future[Model | None] = Future()
        generation = self._generation

        def run() -> None:
            try:
                future.set_result(work(generation, current))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)
            finally:
                with self._lock:
                    if self._pending is future:
                        self._pending = None

        self._pending = future
        threading.Thread(target=run, name="model-loader", daemon=True).start()
        return future

    def _first_load(self, generation: int, _current: Model | None) -> Model | None:
        try:
            model = self._load(version=None)
        except RecError as exc:
            with self._lock:
                if generation == self._generation:
                    self._last_error = exc
                    self._retry_at = self._clock() + MIN_RETRY_SECONDS
            logger.warning("model load failed", extra={"reason": str(exc), "uri": self._settings().model_uri})
            raise
        self._install(model, generation)
        return model

    def _refresh(self, generation: int, current: Model | None) -> Model | None:
        assert current is not None
        try:
            latest = read_latest_version(self._get_store())
        except ModelNotFoundError as exc:
            self._mark_stale(generation, "nothing_published", "LATEST missing or empty; serving the current model", exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a failed check must not fail requests the old model can serve
            self._mark_stale(generation, "store_unreachable", "LATEST check failed; serving the current model", exc)
            return None
        refused = self._bad_versions.get(latest)
        if latest == current.version:
            self._mark_stale(generation, None)
            return None
        if refused is not None and self._clock() < refused.retry_at:
            self._mark_stale(generation, "version_refused")
            return None
        try:
            model = self._load(version=latest)
        except RecError as exc:
            failures = refused.failures + 1 if refused is not None else 1
            base = max(self._settings().refresh_seconds, MIN_RETRY_SECONDS)
            delay = min(base * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
            with self._lock:
                if generation == self._generation:
                    self._bad_versions[latest] = _Refused(failures, self._clock() + delay)
                    self._stale = "version_refused"
            logger.error(
                "new model version refused; still serving the current one",
                extra={
                    "bad_version": latest,
                    "serving_version": current.version,
                    "failures": failures,
                    "retry_in_s": delay,
                    "reason": str(exc),
                },
            )
            return None
        self._install(model, generation)
        logger.info("model swapped", extra={"old_version": current.version, "new_version": model.version})
        return model

    def _mark_stale(
        self, generation: int, reason: StaleReason | None, message: str = "", exc: Exception | None = None
    ) -> None:
        with self._lock:
            if generation == self._generation:
                self._stale = reason
        if exc is not None:
            logger.warning(message, extra={"reason": repr(exc), "stale": reason})

    def _install(self, model: Model, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._model = model  # one reference assignment: atomic for readers
            self._next_check = self._clock() + self._settings().refresh_seconds
            self._last_error = None
            self._stale = None
            self._bad_versions.pop(model.version, None)
            self.loads += 1
            loads = self.loads
        logger.info("model loaded", extra={"model_version": model.version, "loads": loads})

    def _get_store(self) -> ArtifactStore:
        settings = self._settings()
        uri = settings.model_uri
        with self._lock:
            if self._store is None or uri != self._store_uri:
                self._store, self._store_uri = open_store(uri, timeouts=S3Timeouts.of(settings)), uri
            return self._store

    def _load(self, version: str | None) -> Model:
        settings = self._settings()
        try:
            model = load_model(self._get_store(), version=version, cache_dir=settings.cache_dir)
            self._validate(model)
            if self._prepare is not None:
                self._prepare(model)
            return model
        except RecError:
            raise
        except Exception as exc:
            # S3 outages, access denied, disk full: a 503 (the cause logged) and the old model kept, not a 500.
            raise ModelLoadError(
                f"cannot load the model from {settings.model_uri}: {type(exc).__name__}: {exc}"
            ) from exc


registry = ModelRegistry(prepare=views)
