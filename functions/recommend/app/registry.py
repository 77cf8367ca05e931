"""The process-wide model holder: lazy first load, periodic hot swap, and graceful failure.

Importing this module touches no S3. The first request that needs a model starts loading it
(once, however many requests arrive together). Afterwards, at most every ``REC_REFRESH_SECONDS``
one request reads ``LATEST`` (one small GET) and, if it names another version, loads, validates
(:func:`reccore.validation.validate_model`) and swaps it in. A request keeps the :class:`Model`
object it started with, so a swap never changes a response mid-flight.

Loads and checks run in a background thread. **The wait follows the load**: with no model yet, a request
waits while the load makes progress (each file fetched, the decoding, the validation), up to
``REC_LOAD_MAX_WAIT_SECONDS`` (12 s, under the function's 15 s timeout); only a store that stops answering for
``REC_LOAD_WAIT_SECONDS`` gets a quick 503 that says so (the load goes on). With a model, a request waits
for the LATEST check no longer than its deadline and serves the current one.

Lambda freezes the execution environment between invocations, so a background thread makes progress only
while some invocation runs. On Lambda (``AWS_LAMBDA_RUNTIME_API`` is set, by Lambda and by its emulator)
the request that finds a new version in LATEST therefore waits for that version's load, like a first load:
the swap finishes within the invocation that needs it. Under uvicorn the swap stays in the background.
A swap fetches the new version's deferred parts before it goes live; a first load leaves them to
:func:`prepare`, after the first answer, or to the first request that needs one.

A version that fails to load or validate is remembered and retried only with exponential backoff;
meanwhile the old model keeps serving and ``/health`` reports it as stale.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

from app.loader import load_checked, prepare
from app.logging import logger
from reccore.deadline import bounded
from reccore.errors import (
    ModelNotFoundError,
    ModelNotReadyError,
    ModelStoreStalledError,
    RecError,
)
from reccore.experiment import Experiment, read_experiment
from reccore.model import Model
from reccore.settings import ServiceSettings, get_service_settings
from reccore.storage import ArtifactStore, S3Timeouts, open_store
from reccore.validation import validate_model
from reccore.versions import read_latest_version

# With no model loaded, every request would otherwise hit S3; one attempt per second is plenty.
MIN_RETRY_SECONDS = 1.0
# A refused version is retried after max(refresh, 1 s) · 2^(failures-1), capped here.
MAX_BACKOFF_SECONDS = 3600.0
_POLL_SECONDS = 0.1  # how often a waiting request looks at the load's progress


def on_lambda() -> bool:
    """True in a Lambda execution environment (and its runtime interface emulator)."""
    return "AWS_LAMBDA_RUNTIME_API" in os.environ


StaleReason = Literal["store_unreachable", "version_refused", "nothing_published"]


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
            self._progress_at = time.monotonic()  # when the job in progress last finished a step
            self._first_load_claimed = False  # whether a request has been told it met this environment's first model
            self._trial: tuple[Experiment, Model] | None = None  # a running experiment and its challenger
            self.loads = 0  # successful loads, for tests and logs

    @property
    def model(self) -> Model | None:
        """The current model without any I/O (``None`` before the first successful load)."""
        return self._model

    def trial(self) -> tuple[Experiment, Model] | None:
        """The running experiment and its challenger model, if one runs (no I/O)."""
        return self._trial

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

    def acquire(self) -> Model:
        """The model to serve with, loading or refreshing it first if due.

        Raises
        ------
        RecError
            No model is loaded and loading one failed (or failed less than a second ago); or the store
            stopped answering (:class:`ModelStoreStalledError`); or the load, though progressing, outlasted
            ``REC_LOAD_MAX_WAIT_SECONDS`` (:class:`ModelNotReadyError`).
        """
        settings = self._settings()
        current = self._model
        if current is not None:
            with self._lock:
                now = self._clock()
                # Never queue behind a check another request started: serve the current model.
                if now < self._next_check or self._pending is not None:
                    return self._model or current
                self._next_check = now + settings.refresh_seconds
                job = self._start(self._refresh, current)
            try:
                if on_lambda():  # the swap must finish in this invocation: wait as for a first load
                    self._await(job, bounded(settings.load_wait_seconds), settings.load_max_wait_seconds)
                else:  # a model is at hand: the check gets no more than the request's deadline
                    job.result(timeout=bounded(settings.load_wait_seconds))
            except (FutureTimeout, ModelNotReadyError):
                logger.warning("LATEST check or swap still running; serving the current model")
            return self._model or current
        with self._lock:
            if self._model is not None:  # loaded while we waited for the lock
                return self._model
            pending = self._pending
            if pending is None:
                if self._last_error is not None and self._clock() < self._retry_at:
                    raise self._last_error
                pending = self._start(self._first_load, None)
            job = pending
        model = self._await(job, settings.load_wait_seconds, settings.load_max_wait_seconds)
        if model is None:  # cannot happen for a first load; kept for the type checker
            raise ModelNotReadyError("no model loaded yet")
        return model

    def claim_first_load(self) -> bool:
        """True exactly once per first model: for the first request that is answered with it."""
        if self._model is None or self._first_load_claimed:
            return False
        with self._lock:
            claimed, self._first_load_claimed = self._first_load_claimed, True
        return not claimed

    def _await(self, job: Future[Model | None], stall: float, limit: float) -> Model | None:
        """The job's result, waiting while it makes progress: at most ``stall`` s without a finished step, and
        ``limit`` s in all. Real time, not the registry's clock: this bounds how long a caller blocks."""
        start = time.monotonic()
        while True:
            try:
                return job.result(timeout=_POLL_SECONDS)
            except FutureTimeout:
                pass
            now = time.monotonic()
            if now - self._progress_at >= stall:
                raise ModelStoreStalledError(f"the model store has not answered for {stall:g} s; the load goes on")
            if now - start >= limit:
                raise ModelNotReadyError(f"the model is still loading after {limit:g} s (making progress)")

    def _progress(self, step: str) -> None:
        self._progress_at = time.monotonic()

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
        self._progress_at = time.monotonic()
        threading.Thread(target=run, name="model-loader", daemon=True).start()
        return future

    def _first_load(self, generation: int, _current: Model | None) -> Model | None:
        try:
            # The first answer needs no derived tables nor the deferred parts: they come after it (or with the
            # first request that needs them), not in the cold start (at 1M items, 60% of the bytes).
            model = self._load(version=None, prepare=False)
        except RecError as exc:
            with self._lock:
                if generation == self._generation:
                    self._last_error = exc
                    self._retry_at = self._clock() + MIN_RETRY_SECONDS
            logger.warning("model load failed", extra={"reason": str(exc), "uri": self._settings().model_uri})
            raise
        self._install(model, generation)
        if self._prepare is not None:
            threading.Thread(target=self._prepare, args=(model,), name="model-tables", daemon=True).start()
        # A running experiment's challenger, after the first answer too: not in the cold start.
        threading.Thread(target=self._sync_trial, args=(generation,), name="experiment", daemon=True).start()
        return model

    def _refresh(self, generation: int, current: Model | None) -> Model | None:
        assert current is not None
        try:
            latest = read_latest_version(self._get_store())
            self._progress("LATEST")
            self._sync_trial(generation)
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

    def _sync_trial(self, generation: int) -> None:
        """Read the experiment object with LATEST; load its challenger once (checked and whole, as for a swap).

        Any failure (unreadable object, a challenger that does not load) ends the trial in this process: every
        request gets the champion, the safe side, and the next check tries again.
        """
        trial = None
        try:
            experiment = read_experiment(self._get_store())
            if experiment is not None and experiment.running:
                current = self._trial
                same = current is not None and current[1].version == experiment.challenger
                challenger = current[1] if same and current is not None else self._load(version=experiment.challenger)
                trial = (experiment, challenger)
        except Exception as exc:  # noqa: BLE001 - the champion serves everyone instead
            logger.warning("experiment not applied; the champion serves every request", extra={"reason": repr(exc)})
        with self._lock:
            if generation == self._generation:
                self._trial = trial

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

    def store(self) -> ArtifactStore:
        """The model store (opened on first use; no I/O)."""
        return self._get_store()

    def _get_store(self) -> ArtifactStore:
        settings = self._settings()
        uri = settings.model_uri
        with self._lock:
            if self._store is None or uri != self._store_uri:
                self._store, self._store_uri = open_store(uri, timeouts=S3Timeouts.of(settings)), uri
            return self._store

    def _load(self, version: str | None, prepare: bool = True) -> Model:
        return load_checked(self._get_store, self._settings(), version, self._progress, self._validate,
                            self._prepare if prepare else None, whole=prepare)  # fmt: skip


registry = ModelRegistry(prepare=prepare)
