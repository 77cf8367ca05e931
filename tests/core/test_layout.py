"""The key layout in a store: every key lies under the store's prefix; the locations a store is opened from."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from reccore.errors import ConfigError
from reccore.layout import LATEST_KEY, Manifest
from reccore.storage import LocalStore, S3Store, open_store
from reccore.versions import publish
from tests.core.conftest import BUCKET, fresh


def test_s3_keys_live_under_the_prefix(s3_store: S3Store, packaged: tuple[Manifest, dict[str, bytes]]) -> None:
    published = publish(s3_store, fresh(packaged[0]), packaged[1])
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"team/recs/{LATEST_KEY}" in keys
    assert f"team/recs/models/{published.version}/manifest.json" in keys
    assert all(k.startswith("team/recs/models/") for k in keys)


def test_open_store_parses_locations(tmp_path: Path) -> None:
    s3 = open_store("s3://bucket-name/a/b/")
    assert isinstance(s3, S3Store) and s3.bucket == "bucket-name" and s3.prefix == "a/b"
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    with pytest.raises(ConfigError):
        open_store("gs://elsewhere/x")
    with pytest.raises(ConfigError):
        open_store("s3://ab/x")
