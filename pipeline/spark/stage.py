"""``s3://`` inputs for a Spark session that cannot read S3 itself.

On EMR Serverless, Spark reads ``s3://`` through EMRFS. A local session has no S3 filesystem on its
classpath: that needs hadoop-aws and the AWS SDK bundle, Maven artifacts that pyspark does not ship
(and that these machines cannot download). So in local mode the engine copies the objects under the
URI to a scratch directory with boto3, which honours ``AWS_ENDPOINT_URL_S3`` (moto locally), and
Spark reads the copy. Local mode runs on one machine, so the input has to fit its disk anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from reccore.errors import DataSourceError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def reads_s3(spark: SparkSession) -> bool:
    """Whether the session's Hadoop configuration has a filesystem for the ``s3`` scheme (EMRFS, S3A)."""
    from py4j.protocol import Py4JError

    try:
        jvm, context = getattr(spark, "_jvm"), getattr(spark, "_jsc")  # noqa: B009  (py4j handles, no public API)
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass("s3", context.hadoopConfiguration())
    except Py4JError:  # Py4JJavaError wrapping UnsupportedFileSystemException: no such filesystem
        return False
    return True


def local_copy(uri: str, scratch: Path, client: Any = None) -> Path:
    """Copy the object ``uri`` names, or every object under it as a prefix, into ``scratch``; the local path.

    Raises
    ------
    DataSourceError
        Nothing exists at ``uri``, or S3 refuses the listing or a download.
    """
    import boto3  # deferred: only s3:// inputs in local mode need it

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    client = client or boto3.client("s3")
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        if key in keys:  # one object: the file itself
            scratch.mkdir(parents=True, exist_ok=True)
            target = scratch / Path(key).name
            client.download_file(bucket, key, str(target))
            return target
        prefix = key.rstrip("/") + "/" if key else ""
        inside = [k for k in keys if k.startswith(prefix) and not k.endswith("/")]
        if not inside:
            raise DataSourceError(f"{uri}: file not found")
        root = scratch / (Path(prefix.rstrip("/")).name or bucket)
        for name in inside:
            target = root / name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, name, str(target))
        return root
    except DataSourceError:
        raise
    except Exception as exc:  # botocore raises many types; the run needs one
        raise DataSourceError(f"{uri}: cannot read ({type(exc).__name__}: {exc})") from exc
