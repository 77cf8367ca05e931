"""A run whose input and settings match the live model's reuses it instead of training again.

:func:`run_fingerprint` hashes what determines a model (the log's contents and every model setting), and the
published manifest records it (``params["fingerprint"]``); :func:`live_match` finds the live version that
carries the same one.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from pipeline.data import InteractionLog
from reccore.errors import ArtifactIntegrityError, ModelNotFoundError
from reccore.layout import Manifest
from reccore.settings import PipelineSettings
from reccore.storage import ArtifactStore
from reccore.versions import read_latest_version, read_manifest

logger = logging.getLogger(__name__)

# The settings that do not change the model: where it goes, how it is run, and what happens after publishing.
_NOT_MODEL = {"output", "retention", "force", "progress", "reuse", "master", "driver_memory",
              "spark_threshold_bytes", "emr_application_id", "emr_job_role_arn", "emr_code_uri", "user_table",
              "user_events", "user_arrays", "min_recall"}  # fmt: skip


def run_fingerprint(settings: PipelineSettings, log: InteractionLog) -> str:
    """sha256 of what determines the published model: the log's contents and every model setting (engine included)."""
    digest = hashlib.sha256()
    model_settings = {k: v for k, v in settings.model_dump().items() if k not in _NOT_MODEL}
    digest.update(json.dumps(model_settings, sort_keys=True, default=str).encode())
    for array in (log.users, log.items, log.weights, log.timestamps, log.events, log.user_ids, log.item_ids,
                  log.prices):  # fmt: skip
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps([log.event_types, log.titles, log.categories]).encode())
    return digest.hexdigest()


def live_match(store: ArtifactStore, fingerprint: str) -> Manifest | None:
    """The manifest of the live model at ``store`` if it carries ``fingerprint``, else None (also: nothing live)."""
    try:
        manifest = read_manifest(store, read_latest_version(store))
    except (ModelNotFoundError, ArtifactIntegrityError) as exc:
        logger.info("nothing to reuse at %s: %s", store.uri, exc)
        return None
    return manifest if manifest.params.get("fingerprint") == fingerprint else None
