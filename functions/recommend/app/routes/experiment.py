"""``GET /experiment``: the champion/challenger experiment as the decision job last recorded it."""

from __future__ import annotations

from fastapi import APIRouter

from app.registry import registry
from app.schemas.catalogue import ExperimentResponse
from app.schemas.common import COMMON_ERRORS
from app.state import within_deadline
from reccore.errors import ModelStoreStalledError, RecError
from reccore.experiment import read_experiment

router = APIRouter(tags=["experiment"], responses=COMMON_ERRORS)


@router.get("/experiment", response_model=ExperimentResponse)
async def experiment() -> ExperimentResponse:
    """The experiment object (split, status, every evaluation with CTRs and intervals), or null if none was started."""
    try:
        found = await within_deadline(read_experiment, registry.store())
    except RecError:
        raise
    except Exception as exc:  # a store that refuses or resets: the store is unavailable, not a 500
        raise ModelStoreStalledError(f"experiment object unreadable: {type(exc).__name__}: {exc}") from exc
    # The salt stays private: with it, anyone could tell which users get which variant.
    return ExperimentResponse(experiment=None if found is None else found.model_dump(mode="json", exclude={"salt"}))
