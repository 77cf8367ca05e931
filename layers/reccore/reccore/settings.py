"""Every environment variable the system reads, in one place.

All names carry the ``REC_`` prefix (pydantic-settings derives them from the
field names: ``model_uri`` -> ``REC_MODEL_URI``). AWS variables keep their
standard names and are read by boto3 itself (``AWS_ENDPOINT_URL_S3``,
``AWS_DEFAULT_REGION``, credentials), so nothing here duplicates them.

Settings are built on first use through the cached ``get_*`` functions, never at
import time, so tests can set the environment and call ``cache_clear()``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "REC_"
DEFAULT_MODEL_URI = "s3://recsys-artifacts/recsys"
DEFAULT_API_URL = "http://127.0.0.1:8000"
EMR_READERS = "pipeline Lambda, make train-emr"  # who reads the EMR Serverless settings (docs/configuration.md)


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", protected_namespaces=())


class ServiceSettings(_Base):
    """Settings of the recommend service (the Lambda function and ``make demo``'s uvicorn)."""

    model_uri: str = Field(
        DEFAULT_MODEL_URI, description="Where the pipeline publishes: s3://bucket/prefix or a directory."
    )
    refresh_seconds: float = Field(60.0, ge=0, description="How often a request may check LATEST for a newer model.")
    root_path: str = Field(
        "", description="Path prefix when uvicorn runs behind a proxy; under Lambda the stage comes from each event."
    )
    cors_origins: str = Field("*", description="Comma-separated origins allowed by CORS when served by uvicorn.")
    # 1 MiB holds the longest recent_items (5,000 objects: ~330 KB with 7-character ids; scripts/bench_history.py).
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Requests with larger bodies get a 413.")
    cache_dir: str = Field("/tmp/reccore", description="Where the model's verified files are written and mapped from.")
    log_level: str = Field("INFO", description="Log level of the structured JSON logs.")
    user_table: str = Field(
        "", description="DynamoDB table of per-user state; empty: the model's histories plus an in-process buffer."
    )
    user_events: int = Field(200, ge=1, le=1000, description="Newest interactions kept per user in the state store.")
    user_ttl_days: float = Field(365.0, gt=0, description="Days after its last write that a user's state expires.")
    events_stream: str = Field(
        "", description="Firehose delivery stream of the training event log; empty: written under <model URI>/events/."
    )
    impressions_stream: str = Field(
        "",
        description="Firehose delivery stream of the impressions (one record per /recommend answer); empty: "
        "written under <model URI>/impressions/.",
    )
    event_max_skew_seconds: int = Field(300, ge=0, description="How far in the future an event timestamp may lie.")
    docs_enabled: bool = Field(True, description="Serve /docs, /redoc and /openapi.json (false: they answer 404).")
    # A stalled S3 (connection accepted, no answer) must cost a request seconds, not botocore's 60 s defaults.
    s3_connect_timeout: float = Field(1.0, gt=0, le=60, description="Seconds to open a connection to S3.")
    s3_read_timeout: float = Field(2.0, gt=0, le=300, description="Seconds to wait for S3 to send data.")
    s3_max_attempts: int = Field(2, ge=1, le=10, description="Attempts per S3 call, the first included.")
    request_deadline_seconds: float = Field(
        2.0,
        gt=0,
        le=30,
        description="Every backend call of one request (LATEST check, user state, event log) shares this budget; "
        "past it reads answer degraded and writes 503.",
    )
    embedded_max_users: int = Field(
        100_000, ge=1, description="Users the in-process state store holds (no REC_USER_TABLE); LRU beyond."
    )
    load_wait_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Longest a request waits on a model store that has stopped answering (no progress): then 503, "
        "or the current model; the load goes on in the background.",
    )
    load_max_wait_seconds: float = Field(
        12.0,
        gt=0,
        le=28,
        description="Longest a request waits for a model load that is making progress: under the function's "
        "timeout (15 s in template.yaml) and API Gateway's 29 s.",
    )


class PipelineSettings(_Base):
    """Defaults of ``python -m pipeline run``; each CLI flag overrides its variable."""

    source: str = Field(
        "synthetic",
        description="synthetic, movielens-100k, a CSV/Parquet table (a path or s3:// URI), or an event log "
        "(s3://bucket/prefix/events/ or a directory).",
    )
    items: str | None = Field(None, description="Optional item metadata table (CSV/Parquet, local or s3://).")
    events: str | None = Field(
        None, description="Event log added to the source: s3://bucket/prefix/events/ or a directory."
    )
    output: str = Field(DEFAULT_MODEL_URI, description="Where to publish: s3://bucket/prefix or a directory.")
    interactions: int = Field(100_000, ge=1_000, description="Synthetic source: number of interactions.")
    n_items: int | None = Field(
        None,
        ge=60,
        description="Synthetic source: catalogue size; default: grows with the interactions (10,000 at 100k, "
        "100k at 10M). Items beyond what the interactions can cover stay cold (content-based).",
    )
    seed: int = Field(42, description="Seed of the synthetic data, the SVD and the evaluation sampling.")
    factors: int = Field(50, ge=2, le=1000, description="Latent factors k of the truncated SVD.")
    # Weighting and scaling chosen by the MovieLens-100K evaluation (docs/evaluation.md).
    weighting: Literal["none", "log", "bm25", "tfidf"] = Field("log", description="Confidence weighting of the matrix.")
    scaling: float = Field(0.5, ge=0.0, le=2.0, description="Exponent β of the scores x·V·Σ^β·Vᵀ (0: plain PureSVD).")
    shrinkage: float = Field(
        0.0, ge=0.0, le=100.0, description="Singular-value shrinkage σ²/(σ²+λ), λ = this × mean σ² (0: none)."
    )
    pop_alpha: float = Field(
        0.0, ge=0.0, le=2.0, description="Popularity-normalised input: an item counts (its user count)^-α."
    )
    min_rating: float = Field(
        0.0, ge=0.0, description="Interactions with a rating (weight) below this count as no interaction (0: keep all)."
    )
    centre: bool = Field(False, description="Centre each user's weighted ratings on 1 (below-average ones count less).")
    split: Literal["time", "random"] | None = Field(
        None,
        description="What the run is judged and tuned on: each user's newest 20% (time) or a random 20% (random); "
        "default: random for a table of ratings, time for event logs.",
    )
    tune: bool | None = Field(
        None, description="Tune the hyperparameters on validation folds (default: when the log is small enough)."
    )
    tune_max_interactions: int = Field(
        1_000_000, ge=0, description="Tuning is on by default for logs with at most this many interactions."
    )
    index: Literal["flat", "ivf", "hnsw", "auto"] = Field(
        "flat", description="FAISS index: flat (exact), ivf, hnsw, or auto (measured choice)."
    )
    min_recall: float = Field(
        0.95, ge=0.0, le=1.0, description="Refuse to publish an approximate index below this recall@10."
    )
    exact_below: int = Field(50_000, ge=0, description="--index auto keeps exact search below this many items.")
    retention: int = Field(5, ge=1, description="Published versions kept; older ones are deleted.")
    force: bool = Field(False, description="Publish even if the model does not beat popularity.")
    reuse: bool = Field(
        False,
        description="Skip training when the live model was trained on the same input with the same settings.",
    )
    engine: Literal["single-process", "spark"] = Field(
        "single-process", description="Training engine: this process, or Spark (local or EMR Serverless)."
    )
    master: str = Field("local[*]", description="Spark master URL for --engine spark (ignored on EMR Serverless).")
    driver_memory: str = Field("4g", description="Spark driver memory for --engine spark in local mode.")
    # The pipeline Lambda hands inputs at least this large to EMR Serverless (template parameter SparkThresholdBytes).
    spark_threshold_bytes: int = Field(
        2 * 1024**3,
        ge=0,
        description="s3:// inputs this large (bytes) train on EMR Serverless instead of in the Lambda (template "
        "parameter SparkThresholdBytes).",
        json_schema_extra={"used_by": "pipeline Lambda"},
    )
    emr_application_id: str | None = Field(
        None,
        description="EMR Serverless application that runs Spark jobs (stack output SparkApplicationId).",
        json_schema_extra={"used_by": EMR_READERS},
    )
    emr_job_role_arn: str | None = Field(
        None,
        description="IAM role the EMR Serverless job runs as (stack output SparkJobRoleArn).",
        json_schema_extra={"used_by": EMR_READERS},
    )
    emr_code_uri: str | None = Field(
        None,
        description="s3://bucket/prefix holding the packed environment, the entry script and the job logs.",
        json_schema_extra={"used_by": EMR_READERS},
    )
    user_table: str = Field("", description="DynamoDB table that receives each user's newest interactions on publish.")
    user_events: int = Field(200, ge=1, le=1000, description="Newest interactions kept per user in the state store.")
    user_arrays: bool | None = Field(
        None, description="Publish per-user arrays (vectors, histories); default: only when no user table is set."
    )
    progress: bool = Field(
        True, description="Progress bars on a terminal; never drawn when stdout or stderr is not a terminal."
    )


class BatchSettings(_Base):
    """Defaults of ``python -m pipeline batch``; each CLI flag (or Lambda event key) overrides its variable."""

    batch_model: str = Field(
        DEFAULT_MODEL_URI, description="Published models to read: s3://bucket/prefix or a directory."
    )
    batch_users: str = Field("all", description="all, or a file (local or s3://) of user ids, one per line.")
    batch_k: int = Field(10, ge=1, le=1000, description="Items per user.")
    batch_output: str = Field("recommendations.parquet", description="Parquet file to write, local or s3://.")
    batch_threads: int = Field(2, ge=1, le=64, description="Worker threads.")


class FrontendSettings(_Base):
    """Settings of the Streamlit dashboard."""

    api_url: str = Field(
        DEFAULT_API_URL,
        description="Base URL of the recommend API (or api_url in .streamlit/secrets.toml; editable in the sidebar).",
    )
    api_timeout: float = Field(5.0, gt=0, description="Seconds before an API call is abandoned.")
    api_auth: Literal["none", "iam"] = Field(
        "none",
        description="none (a local API), or iam: sign every call with SigV4, credentials from the standard AWS chain.",
    )
    # AWS's own variable (set by Lambda, ECS and CloudShell), hence no REC_ prefix; botocore itself reads
    # only AWS_DEFAULT_REGION, which remains the last fallback.
    aws_region: str | None = Field(
        None,
        validation_alias="AWS_REGION",
        description="Signing region when the API URL names none (a custom domain).",
    )


def env_name(field: str) -> str:
    """The environment variable of a settings field, e.g. ``model_uri`` -> ``REC_MODEL_URI``.

    For code that sets the environment of a process it starts (``scripts/serve.py``).
    """
    if not any(
        field in cls.model_fields for cls in (ServiceSettings, PipelineSettings, BatchSettings, FrontendSettings)
    ):
        raise ValueError(f"field: no setting is named {field!r}")
    return f"{ENV_PREFIX}{field.upper()}"


@lru_cache(maxsize=1)
def get_service_settings() -> ServiceSettings:
    return ServiceSettings()


@lru_cache(maxsize=1)
def get_frontend_settings() -> FrontendSettings:
    return FrontendSettings()
