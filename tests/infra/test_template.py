"""The SAM template: it lints clean, and it says what the rest of the repo assumes.

The structural tests parse ``template.yaml`` directly (see conftest.py), so they run without AWS access.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.infra.conftest import ROOT, SAM_INSTALL, SAM_VENV, TEMPLATE, require_venv_tool

EVENTS = ROOT / "events"


def _resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_}


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in function["Properties"].get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, f"only inline statements are expected: {policy!r}"
        statements.extend(policy["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


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
        ("GET", "/users"),
        ("GET", "/users/{user_id}"),
        ("GET", "/docs"),
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


def test_recommend_function_can_only_read_under_the_model_prefix(template: dict[str, Any]) -> None:
    statements = [
        s
        for s in _statements(template["Resources"]["RecommendFunction"])
        if any(a.startswith("s3:") for a in _actions(s))
    ]
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert set(_actions(statement)) <= {"s3:GetObject", "s3:ListBucket"}, statement
        resource = json.dumps(statement["Resource"])
        if "s3:GetObject" in _actions(statement):
            assert "${ModelPrefix}/*" in resource, "GetObject must be scoped to the prefix"
        if "s3:ListBucket" in _actions(statement):
            assert statement["Condition"]["StringLike"]["s3:prefix"], "ListBucket must be scoped to the prefix"


def test_pipeline_function_writes_only_under_the_model_prefix(template: dict[str, Any]) -> None:
    statements = _statements(template["Resources"]["PipelineFunction"])
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


def _non_s3_grants(function: dict[str, Any]) -> dict[str, Any]:
    """Every non-S3 action a function may take, mapped to the resource it is granted on."""
    grants: dict[str, Any] = {}
    for statement in _statements(function):
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            if not action.startswith("s3:"):
                grants[action] = statement["Resource"]
    return grants


def test_user_table_matches_reccore_and_is_protected(template: dict[str, Any]) -> None:
    from reccore.userstate import KEY_ATTRIBUTES, KEY_SCHEMA, TTL_ATTRIBUTE

    (name, table) = next(iter(_resources_of_type(template, "AWS::DynamoDB::Table").items()))
    props = table["Properties"]
    assert props["KeySchema"] == KEY_SCHEMA and props["AttributeDefinitions"] == KEY_ATTRIBUTES
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert name == "UserStateTable"


def test_event_stream_delivers_to_the_events_prefix_with_a_role_limited_to_it(template: dict[str, Any]) -> None:
    from reccore.eventlog import EVENTS_DIR

    (stream,) = _resources_of_type(template, "AWS::KinesisFirehose::DeliveryStream").values()
    props = stream["Properties"]
    assert props["DeliveryStreamType"] == "DirectPut"
    destination = props["ExtendedS3DestinationConfiguration"]
    assert destination["Prefix"] == {"Fn::Sub": f"${{ModelPrefix}}/{EVENTS_DIR}/"}
    assert destination["CompressionFormat"] == "UNCOMPRESSED"  # the pipeline reads plain NDJSON
    assert destination["RoleARN"] == {"Fn::GetAtt": ["EventsDeliveryRole", "Arn"]}
    role = template["Resources"]["EventsDeliveryRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "firehose.amazonaws.com"}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for statement in statements:
        resource = json.dumps(statement["Resource"])
        if "s3:PutObject" in _actions(statement):
            assert f"${{ModelPrefix}}/{EVENTS_DIR}/*" in resource, "objects only under the events prefix"
        elif "s3:ListBucket" in _actions(statement):
            assert statement["Condition"]["StringLike"]["s3:prefix"] == [{"Fn::Sub": "${ModelPrefix}/events/*"}]
        else:
            assert "/" not in resource.split(":::", 1)[-1], f"bucket-level lookups only: {statement}"
        assert not any("*" in a or a.startswith(("s3:Delete", "s3:GetObject")) for a in _actions(statement))


def test_recommend_function_gets_only_the_table_and_stream_calls_it_makes(template: dict[str, Any]) -> None:
    function = template["Resources"]["RecommendFunction"]
    table, stream = {"Fn::GetAtt": ["UserStateTable", "Arn"]}, {"Fn::GetAtt": ["EventsDeliveryStream", "Arn"]}
    assert _non_s3_grants(function) == {
        "dynamodb:Query": table,
        "dynamodb:GetItem": table,
        "dynamodb:PutItem": table,
        "firehose:PutRecordBatch": stream,
    }
    env = function["Properties"]["Environment"]["Variables"]
    assert env["REC_USER_TABLE"] == {"Ref": "UserStateTable"}
    assert env["REC_EVENTS_STREAM"] == {"Ref": "EventsDeliveryStream"}


def test_pipeline_function_batch_writes_the_table_and_runs_on_a_schedule(template: dict[str, Any]) -> None:
    from reccore.settings import PipelineSettings, ServiceSettings

    function = template["Resources"]["PipelineFunction"]
    assert _non_s3_grants(function) == {
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
    (schedule,) = [e for e in function["Properties"]["Events"].values() if e["Type"] == "Schedule"]
    props = schedule["Properties"]
    assert props["State"] == {"Fn::If": ["TrainingScheduleEnabled", "ENABLED", "DISABLED"]}
    assert props["Schedule"]["Fn::If"][1] == {"Ref": "TrainingSchedule"}
    assert json.loads(props["Input"]["Fn::Sub"][0].replace("${Bucket}", "b").replace("${ModelPrefix}", "p")) == {
        "events": "s3://b/p/events/"
    }
    assert PipelineSettings(events="s3://b/p/events/").events == "s3://b/p/events/"
