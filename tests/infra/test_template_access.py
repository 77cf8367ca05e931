"""What each function's role lets it reach: the published models, the logs, the user table and the streams.

The roles' statements are evaluated (conftest.py's small evaluator: Allow statements, ``*`` wildcards,
``StringLike``/``StringEquals`` conditions) against keys and calls taken from the code that makes them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import BUCKET, PublishedModel
from tests.infra.conftest import _actions, _allows, _non_s3_grants, _object, _statements


def test_recommend_function_reads_only_the_published_models(template: dict[str, Any]) -> None:
    from reccore.eventlog import EVENTS_DIR
    from reccore.layout import LATEST_KEY, MANIFEST_NAME, MODELS_DIR, Files, version_key

    statements = _statements(template, "RecommendFunction")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    assert {a for s in s3 for a in _actions(s)} == {"s3:GetObject", "s3:ListBucket"}, "read-only: no S3 write"
    (read,) = [s for s in s3 if "s3:GetObject" in _actions(s)]
    assert read["Resource"]["Fn::Sub"][0] == f"arn:${{AWS::Partition}}:s3:::${{Bucket}}/${{ModelPrefix}}/{MODELS_DIR}/*"
    (listing,) = [s for s in s3 if "s3:ListBucket" in _actions(s)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": f"${{ModelPrefix}}/{MODELS_DIR}/*"}}}

    prefix, version = "recsys", "20260101T000000.000000Z-abcdef"
    reads = [LATEST_KEY, version_key(version, MANIFEST_NAME), *(version_key(version, n) for n in Files.ALL)]
    for key in (f"{prefix}/{k}" for k in reads):
        assert _allows(statements, "s3:GetObject", _object(key), prefix), key
        # A missing key is a 404 (nothing published yet) only if ListBucket holds with the key as s3:prefix.
        assert _allows(statements, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", prefix, {"s3:prefix": key}), key
    for key in [
        f"{prefix}/{EVENTS_DIR}/2026/01/01/00/events-1.json",  # users' raw events
        f"{prefix}/emr/pipeline.py",  # the Spark job's code and logs
        f"{prefix}/source/interactions.parquet",
        f"{prefix}x/{LATEST_KEY}",  # a sibling prefix
        LATEST_KEY,
    ]:
        assert not _allows(statements, "s3:GetObject", _object(key), prefix), key
        assert not _allows(statements, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", prefix, {"s3:prefix": key}), key
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not _allows(statements, action, _object(f"{prefix}/{EVENTS_DIR}/x.json"), prefix)
        assert not _allows(statements, action, _object(f"{prefix}/{LATEST_KEY}"), prefix)


# S3 operations the code may call -> the IAM action that authorizes each.
S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "ListObjectsV2": "s3:ListBucket",
    "DeleteObjects": "s3:DeleteObject",
}


def test_every_call_the_api_makes_is_granted_to_its_role(
    template: dict[str, Any],
    configure_service: Callable[..., None],
    published_model: PublishedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deployed wiring (a DynamoDB table, a Firehose stream), every route, each AWS call recorded by botocore."""
    import boto3
    from fastapi.testclient import TestClient

    from app.main import app
    from reccore.eventlog import create_stream
    from reccore.userstate.table import create_table

    name = f"iam-{uuid.uuid4().hex[:8]}"
    prefix = published_model.uri.removeprefix(f"s3://{BUCKET}/")
    create_table(boto3.client("dynamodb"), name)
    create_stream(boto3.client("firehose"), name, BUCKET, prefix)
    calls: list[tuple[str, str, dict[str, Any]]] = []
    session = boto3.session.Session()  # the clients the service creates from here on report each call
    session.events.register(
        "provide-client-params",
        lambda params, model, **_: calls.append((model.service_model.signing_name, model.name, dict(params))),
    )
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    configure_service(published_model.uri, REC_USER_TABLE=name, REC_EVENTS_STREAM=name)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        item = client.get("/items").json()["items"][0]["item_id"]
        user = client.get("/users").json()["users"][0]["user_id"]
        for method, path, body in [
            ("GET", "/", None),
            ("GET", "/items/map", None),
            ("GET", f"/items/{item}", None),
            ("GET", f"/items/{item}/similar", None),
            ("GET", "/categories", None),
            ("GET", "/experiment", None),
            ("GET", f"/users/{user}", None),
            ("POST", "/recommend", {"user_id": user, "k": 5}),
            ("POST", "/recommend", {"recent_items": [item], "k": 5}),
            ("POST", "/events", {"events": [{"user_id": "new-user", "item_id": item, "event": "click"}]}),
            ("POST", "/recommend", {"user_id": "new-user", "k": 5}),
        ]:
            response = client.request(method, path, json=body)
            assert response.status_code == 200, (path, response.text)

    statements = _statements(template, "RecommendFunction")
    granted = {a for s in statements for a in _actions(s)}
    services = {service for service, _, _ in calls}
    assert {"s3", "dynamodb", "firehose"} <= services, calls  # the deployed paths were taken
    for service, operation, params in calls:
        if service != "s3":  # resources are checked structurally (test_recommend_function_gets_only_...)
            assert f"{service}:{operation}" in granted, f"{service}:{operation} is called but not granted"
            continue
        assert operation in S3_ACTIONS, f"map S3 {operation} to its IAM action"
        assert params["Bucket"] == BUCKET
        action = S3_ACTIONS[operation]
        if action == "s3:ListBucket":
            context = {"s3:prefix": params.get("Prefix", "")}
            assert _allows(statements, action, f"arn:aws:s3:::{BUCKET}", prefix, context), (operation, params)
        else:
            assert _allows(statements, action, _object(params["Key"]), prefix), (operation, params["Key"])
    assert {S3_ACTIONS[op] for service, op, _ in calls if service == "s3"} == {"s3:GetObject"}


def test_pipeline_function_writes_only_under_the_model_prefix(template: dict[str, Any]) -> None:
    statements = _statements(template, "PipelineFunction")
    actions = {a for s in statements for a in _actions(s)}
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    for statement in statements:
        assert "*" not in "".join(_actions(statement)), "no wildcard actions"
        if "s3:PutObject" in _actions(statement):
            assert "${ModelPrefix}/*" in json.dumps(statement["Resource"])


def test_recommend_function_gets_only_the_table_and_stream_calls_it_makes(template: dict[str, Any]) -> None:
    function = template["Resources"]["RecommendFunction"]
    table = {"Fn::GetAtt": ["UserStateTable", "Arn"]}
    streams = [{"Fn::GetAtt": [name, "Arn"]} for name in ("EventsDeliveryStream", "ImpressionsDeliveryStream")]
    assert _non_s3_grants(template, "RecommendFunction") == {
        "dynamodb:Query": table,
        "dynamodb:GetItem": table,
        "dynamodb:PutItem": table,
        "firehose:PutRecordBatch": streams,
    }
    env = function["Properties"]["Environment"]["Variables"]
    assert env["REC_USER_TABLE"] == {"Ref": "UserStateTable"}
    assert env["REC_EVENTS_STREAM"] == {"Ref": "EventsDeliveryStream"}
