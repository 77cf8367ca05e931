"""A champion/challenger experiment: the small object next to ``LATEST`` that running services pick up.

``<prefix>/models/EXPERIMENT`` (JSON) names the challenger version and its share of the traffic. The
champion is whatever ``LATEST`` names. A service reads the object when it checks ``LATEST`` and, while the
experiment runs, holds both models (memory doubles only then). Assignment is sticky: a hash of the user or
session id with the experiment's own salt, so a user sees one variant for the whole experiment and a new
experiment reshuffles users.

Only the decision job (``python -m pipeline experiment evaluate``) and the CLI write the object: ``rollback``
sets the share to 0, ``promote`` moves ``LATEST`` to the challenger; every decision is appended to it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from reccore.errors import ArtifactIntegrityError
from reccore.layout import MODELS_DIR
from reccore.storage import ArtifactStore

EXPERIMENT_KEY = f"{MODELS_DIR}/EXPERIMENT"
Variant = Literal["champion", "challenger"]
Status = Literal["running", "rollback", "promote", "stopped"]
CHAMPION: Variant = "champion"
CHALLENGER: Variant = "challenger"
MAX_LOOKS = 500  # evaluations kept in the object (the dashboard plots them)


class Experiment(BaseModel):
    id: str = Field(default_factory=lambda: f"exp-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}")
    challenger: str  # a published version id
    champion: str  # LATEST when the experiment started (the variant "champion" always serves LATEST)
    share: float = Field(ge=0.0, le=1.0)  # of users (or sessions) who get the challenger
    salt: str = Field(default_factory=lambda: secrets.token_hex(8))
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    status: Status = "running"
    decisions: list[dict[str, Any]] = Field(default_factory=list)  # the evaluation that ended it
    looks: list[dict[str, Any]] = Field(default_factory=list)  # every evaluation (at most MAX_LOOKS), oldest first

    @property
    def running(self) -> bool:
        return self.status == "running" and self.share > 0.0

    def variant(self, key: str | None) -> Variant:
        """The variant of a user or session id: sticky, ``share`` of ids on the challenger. No id: the champion."""
        if not self.running or not key:
            return CHAMPION
        digest = hashlib.blake2b(f"{self.salt}:{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return CHALLENGER if int.from_bytes(digest, "little") / 2.0**64 < self.share else CHAMPION


def read_experiment(store: ArtifactStore) -> Experiment | None:
    """The experiment object, or None if there is none. Raises :class:`ArtifactIntegrityError` if unreadable."""
    try:
        raw = store.get(EXPERIMENT_KEY)
    except FileNotFoundError:
        return None
    try:
        return Experiment.model_validate_json(raw)
    except ValidationError as exc:
        raise ArtifactIntegrityError(f"{store.uri}/{EXPERIMENT_KEY} is unreadable: {exc}") from exc


def write_experiment(store: ArtifactStore, experiment: Experiment) -> None:
    """Replace the experiment object (one PUT: readers see the old or the new one)."""
    store.put(EXPERIMENT_KEY, experiment.model_dump_json(indent=2).encode())
