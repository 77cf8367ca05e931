"""The SAM template: it lints clean, and it says what the rest of the repo assumes.

The structural tests parse ``template.yaml`` directly (see conftest.py), so they run without AWS access. The IAM
tests (issue 20) also evaluate the roles' statements with a small evaluator (Allow statements, ``*`` wildcards,
``StringLike``/``StringEquals`` conditions), against keys and calls taken from the code that makes them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.conftest import BUCKET, PublishedModel
from tests.infra.conftest import ROOT, SAM_INSTALL, SAM_VENV, TEMPLATE, require_venv_tool, translated_template

EVENTS = ROOT / "events"
FUNCTIONS = ("RecommendFunction", "PipelineFunction")
BASIC_EXECUTION = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
XRAY_WRITE = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}


def _resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_}


def _role(template: dict[str, Any], function: str) -> dict[str, Any]:
    """The role a function names (each declares its own: a role SAM generates carries the X-Ray policy always)."""
    props = template["Resources"][function]["Properties"]
    assert "Policies" not in props, f"{function}: SAM ignores Policies beside Role; put them on the role"
    name, attribute = props["Role"]["Fn::GetAtt"]
    role: dict[str, Any] = template["Resources"][name]
    assert attribute == "Arn" and role["Type"] == "AWS::IAM::Role"
    return role


def _statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """Every inline statement of the function's role."""
    statements: list[dict[str, Any]] = []
    for policy in _role(template, function)["Properties"].get("Policies", []):
        statements.extend(policy["PolicyDocument"]["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _render(value: Any, names: dict[str, str]) -> str:
    """A policy value as IAM sees it: ``Ref``/``Fn::Sub`` from ``names``, ``Fn::GetAtt`` as ``Resource.Attribute``.

    ``Fn::If`` must render the same on both branches (the bucket: created or named, both map to one name here).
    """
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return names[value["Ref"]]
    if "Fn::GetAtt" in value:
        return ".".join(value["Fn::GetAtt"])
    if "Fn::If" in value:
        _, when_true, when_false = value["Fn::If"]
        rendered = {_render(when_true, names), _render(when_false, names)}
        assert len(rendered) == 1, value
        return rendered.pop()
    sub = value["Fn::Sub"]
    text, local = (sub, {}) if isinstance(sub, str) else sub
    scope = {**names, **{key: _render(item, names) for key, item in local.items()}}
    return re.sub(r"\$\{([^}]+)\}", lambda m: scope[m.group(1)], text)


def _names(prefix: str) -> dict[str, str]:
    return {"AWS::Partition": "aws", "ModelPrefix": prefix, "ArtifactsBucket": BUCKET, "ArtifactsBucketName": BUCKET}


def _allows(
    statements: list[dict[str, Any]], action: str, resource: str, prefix: str, context: dict[str, str] | None = None
) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` with request ``context`` (no Deny is used)."""
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        if not any(fnmatchcase(action, pattern) for pattern in _actions(statement)):
            continue
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if not any(fnmatchcase(resource, _render(r, _names(prefix))) for r in resources):
            continue
        holds = []
        for operator, block in statement.get("Condition", {}).items():
            assert operator in ("StringLike", "StringEquals"), f"teach the evaluator {operator}"
            for key, values in block.items():
                patterns = [_render(v, _names(prefix)) for v in (values if isinstance(values, list) else [values])]
                value = (context or {}).get(key)
                match = fnmatchcase if operator == "StringLike" else str.__eq__
                holds.append(value is not None and any(match(value, p) for p in patterns))
        if all(holds):
            return True
    return False


def _object(key: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{key}"


def _resolve(value: Any, conditions: dict[str, bool]) -> Any:
    """``value`` with the ``Fn::If`` of ``conditions`` decided and ``AWS::NoValue`` dropped, as CloudFormation would."""
    if isinstance(value, dict) and set(value) == {"Fn::If"} and value["Fn::If"][0] in conditions:
        name, when_true, when_false = value["Fn::If"]
        return _resolve(when_true if conditions[name] else when_false, conditions)
    if isinstance(value, dict):
        return {k: _resolve(v, conditions) for k, v in value.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(value, list):
        resolved = [_resolve(item, conditions) for item in value]
        return [item for item in resolved if item != {"Ref": "AWS::NoValue"}]
    return value


def _route_pattern(path: str) -> re.Pattern[str]:
    """``/items/{item_id}/similar`` -> a regex matching ``/items/i000001/similar``."""
    parts = re.split(r"(\{[^}/]+\})", path)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


@pytest.mark.slow  # starts sam (cfn-lint); needs .venv-sam, which `make test` creates
def test_sam_validate_lint_passes() -> None:
    sam = require_venv_tool(SAM_VENV, "sam", SAM_INSTALL)
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SAM_CLI_TELEMETRY": "0",
    }
    env.pop("AWS_PROFILE", None)
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--template-file", str(TEMPLATE)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"sam validate --lint failed:\n{result.stdout}\n{result.stderr}"
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_every_event_file_has_a_route_on_the_recommend_function(template: dict[str, Any]) -> None:
    events = template["Resources"]["RecommendFunction"]["Properties"]["Events"]
    routes = [
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events.values() if e["Type"] == "HttpApi"
    ]
    api_events = [p for p in sorted(EVENTS.glob("*.json")) if "requestContext" in json.loads(p.read_text())]
    assert len(api_events) >= 5, "expected the API Gateway events in events/"
    for path in api_events:
        event = json.loads(path.read_text())
        assert event["version"] == "2.0", path.name
        method = event["requestContext"]["http"]["method"]
        raw_path = event["rawPath"]
        stage = event["requestContext"]["stage"]
        if stage != "$default":  # a named stage prefixes the path Lambda sees
            assert raw_path.startswith(f"/{stage}/"), path.name
            raw_path = raw_path[len(stage) + 1 :]
        matches = [r for r in routes if r[0] == method and _route_pattern(r[1]).match(raw_path)]
        assert matches, f"{path.name}: no HttpApi event on RecommendFunction for {method} {raw_path}"
        assert event["routeKey"] in {f"{m} {p}" for m, p in matches}, f"{path.name}: routeKey {event['routeKey']!r}"


def test_every_route_of_the_api_is_mapped(template: dict[str, Any]) -> None:
    events = template["Resources"]["RecommendFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events}
    expected = {
        ("GET", "/"),
        ("GET", "/health"),
        ("POST", "/recommend"),
        ("GET", "/items"),
        ("GET", "/items/map"),
        ("GET", "/items/{item_id}"),
        ("GET", "/items/{item_id}/similar"),
        ("GET", "/categories"),
        ("GET", "/experiment"),
        ("GET", "/users"),
        ("GET", "/users/{user_id}"),
        ("GET", "/docs"),
        ("GET", "/docs/{proxy+}"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("POST", "/events"),
    }
    assert routes == expected
    assert all(e["Properties"]["ApiId"] == {"Ref": "HttpApi"} for e in events)


def test_bucket_is_encrypted_versioned_private_and_tls_only(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ArtifactsBucket"]
    assert bucket["Condition"] == "CreateBucket"
    props = bucket["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] == "AES256"
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    block = props["PublicAccessBlockConfiguration"]
    assert set(block) == {"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"}
    assert all(value is True for value in block.values())

    (policy,) = _resources_of_type(template, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "ArtifactsBucket"}
    denies = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] in ("false", False)
    ]
    assert denies, "no statement denies requests without TLS"
    assert len(denies[0]["Resource"]) == 2, "the TLS deny must cover the bucket and its objects"


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


def test_functions_are_images_built_from_the_repo_root(template: dict[str, Any]) -> None:
    for name, dockerfile in [
        ("RecommendFunction", "functions/recommend/Dockerfile"),
        ("PipelineFunction", "functions/pipeline/Dockerfile"),
    ]:
        function = template["Resources"][name]
        assert function["Properties"]["PackageType"] == "Image"
        assert function["Metadata"]["Dockerfile"] == dockerfile
        assert function["Metadata"]["DockerContext"] == "."
        assert (ROOT / dockerfile).is_file()


def test_api_is_cors_restricted_throttled_and_stage_aware(template: dict[str, Any]) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]
    assert api["CorsConfiguration"]["AllowOrigins"] == [{"Ref": "AllowedOrigin"}]
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert api["StageName"] == {"Ref": "StageName"}
    env = template["Resources"]["RecommendFunction"]["Properties"]["Environment"]["Variables"]
    # The app reads the stage prefix from each event (see events/health_named_stage.json), not from env.
    assert "REC_ROOT_PATH" not in env
    assert env["REC_MODEL_URI"]["Fn::Sub"][0] == "s3://${Bucket}/${ModelPrefix}"
    assert set(template["Outputs"]) >= {"ApiUrl", "ArtifactsBucket", "RecommendFunctionName", "PipelineFunctionName"}


# --- real-time loop (issue 10): user-state table, event stream, schedule ---------------------


def _non_s3_grants(template: dict[str, Any], function: str) -> dict[str, Any]:
    """Every non-S3 action a function may take, mapped to the resource it is granted on."""
    grants: dict[str, Any] = {}
    for statement in _statements(template, function):
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            if not action.startswith("s3:"):
                grants[action] = statement["Resource"]
    return grants


def test_user_table_matches_reccore_and_is_protected(template: dict[str, Any]) -> None:
    from reccore.userstate.table import KEY_ATTRIBUTES, KEY_SCHEMA, TTL_ATTRIBUTE

    (name, table) = next(iter(_resources_of_type(template, "AWS::DynamoDB::Table").items()))
    props = table["Properties"]
    assert props["KeySchema"] == KEY_SCHEMA and props["AttributeDefinitions"] == KEY_ATTRIBUTES
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert name == "UserStateTable"


def test_event_streams_deliver_to_their_prefixes_with_a_role_limited_to_them(template: dict[str, Any]) -> None:
    from reccore.eventlog import EVENTS_DIR
    from reccore.impressions import IMPRESSIONS_DIR

    streams = _resources_of_type(template, "AWS::KinesisFirehose::DeliveryStream")
    assert set(streams) == {"EventsDeliveryStream", "ImpressionsDeliveryStream"}
    for name, directory in (("EventsDeliveryStream", EVENTS_DIR), ("ImpressionsDeliveryStream", IMPRESSIONS_DIR)):
        props = streams[name]["Properties"]
        assert props["DeliveryStreamType"] == "DirectPut"
        destination = props["ExtendedS3DestinationConfiguration"]
        assert destination["Prefix"] == {"Fn::Sub": f"${{ModelPrefix}}/{directory}/"}
        assert destination["CompressionFormat"] == "UNCOMPRESSED"  # the readers take plain NDJSON
        assert destination["RoleARN"] == {"Fn::GetAtt": ["EventsDeliveryRole", "Arn"]}
    role = template["Resources"]["EventsDeliveryRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "firehose.amazonaws.com"}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for statement in statements:
        resource = json.dumps(statement["Resource"])
        if "s3:PutObject" in _actions(statement):
            objects = [r["Fn::Sub"][0].rsplit("${ModelPrefix}/", 1)[1] for r in statement["Resource"]]
            assert objects == [f"{EVENTS_DIR}/*", f"{IMPRESSIONS_DIR}/*"], "objects only under the two log prefixes"
        elif "s3:ListBucket" in _actions(statement):
            assert statement["Condition"]["StringLike"]["s3:prefix"] == [
                {"Fn::Sub": f"${{ModelPrefix}}/{d}/*"} for d in (EVENTS_DIR, IMPRESSIONS_DIR)
            ]
        else:
            assert "/" not in resource.split(":::", 1)[-1], f"bucket-level lookups only: {statement}"
        assert not any("*" in a or a.startswith(("s3:Delete", "s3:GetObject")) for a in _actions(statement))


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


def test_the_experiment_job_runs_on_its_own_schedule_and_a_rollback_alarms(template: dict[str, Any]) -> None:
    from pipeline.handler import handler
    from reccore.impressions import IMPRESSIONS_DIR

    resources = template["Resources"]
    props = resources["PipelineFunction"]["Properties"]["Events"]["ExperimentSchedule"]["Properties"]
    assert props["State"] == {"Fn::If": ["ExperimentScheduleEnabled", "ENABLED", "DISABLED"]}
    event = json.loads(props["Input"]["Fn::Sub"][0].replace("${Bucket}", "b").replace("${ModelPrefix}", "p"))
    assert event == {"command": "experiment-evaluate", "model": "s3://b/p"}
    # The event the schedule sends is one the handler takes: with no experiment it is idle, not an error.
    with tempfile.TemporaryDirectory() as empty:
        assert handler({**event, "model": empty}, None)["status"] == "idle"
    # The service writes impressions to their own stream (never the training log), under impressions/.
    env = resources["RecommendFunction"]["Properties"]["Environment"]["Variables"]
    assert env["REC_IMPRESSIONS_STREAM"] == {"Ref": "ImpressionsDeliveryStream"}
    destination = resources["ImpressionsDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    assert destination["Prefix"] == {"Fn::Sub": f"${{ModelPrefix}}/{IMPRESSIONS_DIR}/"}
    # The decision job logs {"decision": {"decision": "rollback", ...}}: the filter counts exactly those.
    assert (
        resources["ExperimentRollbackMetric"]["Properties"]["FilterPattern"] == '{ $.decision.decision = "rollback" }'
    )
    alarm = resources["ExperimentRollbackAlarm"]["Properties"]
    assert alarm["MetricName"] == "Rollbacks" and alarm["Threshold"] == 1


def test_pipeline_function_batch_writes_the_table_and_runs_on_a_schedule(template: dict[str, Any]) -> None:
    from reccore.settings import PipelineSettings, ServiceSettings

    function = template["Resources"]["PipelineFunction"]
    assert _non_s3_grants(template, "PipelineFunction") == {
        "dynamodb:BatchWriteItem": {"Fn::GetAtt": ["UserStateTable", "Arn"]},
        # large inputs: start a Spark job run on the stack's application, as the stack's job role (pipeline/emr.py)
        "emr-serverless:StartJobRun": {"Fn::GetAtt": ["SparkApplication", "Arn"]},
        "iam:PassRole": {"Fn::GetAtt": ["SparkJobRole", "Arn"]},
    }
    env = function["Properties"]["Environment"]["Variables"]
    assert env["REC_USER_TABLE"] == {"Ref": "UserStateTable"}
    # The variables the template sets are the ones the settings read.
    assert {"user_table", "events"} <= set(PipelineSettings.model_fields)
    assert {"user_table", "events_stream"} <= set(ServiceSettings.model_fields)

    parameter = template["Parameters"]["TrainingSchedule"]
    assert parameter["Default"] == "rate(1 day)"
    pattern = re.compile(parameter["AllowedPattern"])
    assert all(pattern.match(v) for v in ("disabled", "rate(1 day)", "cron(0 3 * * ? *)"))
    assert not pattern.match("daily")
    assert template["Conditions"]["TrainingScheduleEnabled"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TrainingSchedule"}, "disabled"]}]
    }
    events = function["Properties"]["Events"]
    assert {name for name, e in events.items() if e["Type"] == "Schedule"} == {"TrainingSchedule", "ExperimentSchedule"}
    props = events["TrainingSchedule"]["Properties"]
    assert props["State"] == {"Fn::If": ["TrainingScheduleEnabled", "ENABLED", "DISABLED"]}
    assert props["Schedule"]["Fn::If"][1] == {"Ref": "TrainingSchedule"}
    assert json.loads(props["Input"]["Fn::Sub"][0].replace("${Bucket}", "b").replace("${ModelPrefix}", "p")) == {
        "events": "s3://b/p/events/"
    }
    assert PipelineSettings(events="s3://b/p/events/").events == "s3://b/p/events/"


# --- issue 20: X-Ray only with tracing on, PassRole only to EMR Serverless -------------------


@pytest.mark.parametrize("tracing", [False, True], ids=["EnableTracing=false", "EnableTracing=true"])
def test_xray_policy_is_attached_only_with_tracing_on(template: dict[str, Any], tracing: bool) -> None:
    assert template["Conditions"]["TracingOn"] == {"Fn::Equals": [{"Ref": "EnableTracing"}, "true"]}
    assert template["Globals"]["Function"]["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    for function in FUNCTIONS:
        role = _role(template, function)["Properties"]
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
        arns = _resolve(role["ManagedPolicyArns"], {"TracingOn": tracing})
        assert arns == ([BASIC_EXECUTION, XRAY_WRITE] if tracing else [BASIC_EXECUTION]), function
        # No X-Ray grant anywhere else in the role (an inline xray:* statement would bypass the condition).
        assert not [a for s in _statements(template, function) for a in _actions(s) if a.lower().startswith("xray:")]


def test_pass_role_is_only_for_emr_serverless(template: dict[str, Any]) -> None:
    statements = _statements(template, "PipelineFunction")
    (passing,) = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert _actions(passing) == ["iam:PassRole"]
    assert passing["Resource"] == {"Fn::GetAtt": ["SparkJobRole", "Arn"]}
    # The service the condition names is the one the job role trusts, and the one pipeline/emr.py starts runs on.
    (trust,) = template["Resources"]["SparkJobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": trust["Principal"]["Service"]}}

    def passes(service: str | None) -> bool:
        context = {} if service is None else {"iam:PassedToService": service}
        return _allows(statements, "iam:PassRole", "SparkJobRole.Arn", "recsys", context)

    assert passes("emr-serverless.amazonaws.com")
    assert not passes("lambda.amazonaws.com") and not passes("ec2.amazonaws.com") and not passes(None)
    # No other role of the stack may pass a role at all.
    for name, role in _resources_of_type(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if any(fnmatchcase("iam:PassRole", a) for a in _actions(statement)):
                    assert statement is passing, f"{name} may pass roles: {statement}"


@pytest.mark.slow  # runs SAM's translator in .venv-sam, which `make test` creates
@pytest.mark.parametrize("tracing", [False, True], ids=["EnableTracing=false", "EnableTracing=true"])
def test_sam_generates_no_role_and_xray_follows_tracing(template: dict[str, Any], tracing: bool) -> None:
    """A function without its own role would get one from SAM with the X-Ray policy attached unconditionally."""
    resources = _resolve(translated_template()["Resources"], {"TracingOn": tracing})
    declared = set(_resources_of_type(template, "AWS::IAM::Role"))
    assert set(_resources_of_type({"Resources": resources}, "AWS::IAM::Role")) == declared, "SAM added a role"
    functions = _resources_of_type({"Resources": resources}, "AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    for name, function in functions.items():
        props = function["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active" if tracing else "PassThrough"}
        role_name = props["Role"]["Fn::GetAtt"][0]
        arns = json.dumps(resources[role_name]["Properties"].get("ManagedPolicyArns", [])).lower()
        assert ("xray" in arns) is tracing, f"{name}: {arns}"
