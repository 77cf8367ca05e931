"""One exception hierarchy for the whole system.

The service maps each type to one HTTP status in one place (``app/errors.py``);
the pipeline CLI turns any :class:`RecError` into a one-line message and exit code.
"""

from __future__ import annotations


class RecError(Exception):
    """Base class of every error this system raises on purpose."""


class ConfigError(RecError):
    """A setting or argument is invalid (bad URI, out-of-range parameter)."""


class DataSourceError(RecError):
    """An input table is missing, empty or malformed. The message names the file."""


class ModelNotFoundError(RecError):
    """No model has been published at the configured location."""


class ArtifactIntegrityError(RecError):
    """A published file is missing, has the wrong size or the wrong sha256."""


class ModelLoadError(RecError):
    """A published model exists but cannot be turned into a servable model."""


class ModelValidationError(ModelLoadError):
    """A model's files are intact but disagree with each other or cannot answer a query."""


class ModelPartError(ModelLoadError):
    """A part of the model fetched on first use (item vectors, similar-items index, map) could not be fetched."""


class ModelNotReadyError(ModelLoadError):
    """The model is still loading (making progress) after the longest wait a request allows; it goes on."""


class ModelStoreStalledError(ModelNotReadyError):
    """The model store stopped answering during a load (no progress for the wait); the load goes on."""


class QualityGateError(RecError):
    """The trained model failed a publish gate (beats-popularity, ANN recall)."""


class NotFoundError(RecError):
    """A requested user or item id is not in the model."""


class UnknownItemError(NotFoundError):
    """An item id is not in the catalogue."""


class UnknownUserError(NotFoundError):
    """A user id is not in the model."""


class UserStateError(RecError):
    """The user-state store (DynamoDB) cannot be read or written."""


class UserStateBusyError(UserStateError):
    """A user's state kept changing under a write (many concurrent writers for one user): not an outage."""


class DeadlineError(RecError):
    """A backend call did not finish within the request's deadline (``REC_REQUEST_DEADLINE_SECONDS``)."""


class EventLogError(RecError):
    """The training event log (Firehose, or the artifact store) cannot be written."""
