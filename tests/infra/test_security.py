"""The template's security and operations: IAM authorization per route, docs off, one pipeline run at a time,
alarms, tracing, and checkov's scan with every accepted finding explained.

The route authorization is checked twice: on the template as written, and on what SAM's own translator makes
of it (the OpenAPI body API Gateway imports), for both values of ``ReadRoutesAuth``.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.infra.conftest import (
    CHECKOV_VENV,
    ROOT,
    TEMPLATE,
    require_venv_tool,
    translated_template,
)

IAM: list[dict[str, list[str]]] = [{"AWS_IAM": []}]
# Histories and writes: never switchable. POST /events is a plain HttpApi event, so it also shows that a new
# route inherits the default authorizer without saying so.
# Histories, writes and the experiment's figures: IAM-signed whatever ReadRoutesAuth says.
ALWAYS_SIGNED = {("GET", "/users"), ("GET", "/users/{user_id}"), ("POST", "/events"), ("GET", "/experiment")}
ALARMED_METRICS = {
    ("AWS/ApiGateway", "5xx", "HttpApi"),
    ("AWS/Lambda", "Errors", "RecommendFunction"),
    ("AWS/Lambda", "Throttles", "RecommendFunction"),
    ("AWS/Lambda", "Errors", "PipelineFunction"),
    ("AWS/Lambda", "Throttles", "PipelineFunction"),
    ("${AWS::StackName}/experiments", "Rollbacks", "PipelineFunctionLogs"),  # a metric filter on its log group
}


def _event_routes(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    events = template["Resources"]["RecommendFunction"]["Properties"]["Events"].values()
    return {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]): e["Properties"] for e in events}


def _body_security(template: dict[str, Any]) -> dict[tuple[str, str], Any]:
    paths = template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"]
    return {(method.upper(), path): op["security"] for path, item in paths.items() for method, op in item.items()}


def test_every_route_is_signed_by_default_and_users_always(template: dict[str, Any]) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]
    assert api["Auth"] == {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}
    routes = _event_routes(template)
    # No event opts out on its own: the only exceptions are the read routes' switch in the body.
    assert not [route for route, props in routes.items() if "Auth" in props]
    switchable = _body_security(template)
    assert set(switchable) <= set(routes), "a route in the body has no integration"
    assert set(routes) - set(switchable) == ALWAYS_SIGNED
    for route, security in switchable.items():
        assert security == {"Fn::If": ["OpenReadRoutes", [], IAM]}, route
    parameter = template["Parameters"]["ReadRoutesAuth"]
    assert parameter["Default"] == "AWS_IAM" and set(parameter["AllowedValues"]) == {"AWS_IAM", "NONE"}
    assert template["Conditions"]["OpenReadRoutes"] == {"Fn::Equals": [{"Ref": "ReadRoutesAuth"}, "NONE"]}


def test_docs_are_off_unless_the_parameter_turns_them_on(template: dict[str, Any]) -> None:
    assert template["Parameters"]["EnableDocs"]["Default"] == "false"
    env = template["Resources"]["RecommendFunction"]["Properties"]["Environment"]["Variables"]
    assert env["REC_DOCS_ENABLED"] == {"Ref": "EnableDocs"}


def test_cors_lets_a_browser_send_signed_calls(template: dict[str, Any]) -> None:
    headers = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]["AllowHeaders"]
    assert {"authorization", "x-amz-date", "x-amz-security-token", "content-type"} <= set(headers)


def test_one_pipeline_run_at_a_time(template: dict[str, Any]) -> None:
    assert template["Resources"]["PipelineFunction"]["Properties"]["ReservedConcurrentExecutions"] == 1


def test_alarms_cover_api_5xx_and_both_functions_errors_and_throttles(template: dict[str, Any]) -> None:
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    found = set()
    for alarm in alarms:
        if "Dimensions" in alarm:
            (target,) = {d["Value"]["Ref"] for d in alarm["Dimensions"] if d["Name"] in ("ApiId", "FunctionName")}
            found.add((alarm["Namespace"], alarm["MetricName"], target))
        else:  # a metric of our own: counted by a filter on a log group
            filters = [
                r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Logs::MetricFilter"
            ]
            (source,) = [f for f in filters if f["MetricTransformations"][0]["MetricName"] == alarm["MetricName"]]
            assert source["MetricTransformations"][0]["MetricNamespace"] == alarm["Namespace"]
            found.add((alarm["Namespace"]["Fn::Sub"], alarm["MetricName"], source["LogGroupName"]["Ref"]))
        assert alarm["Threshold"] >= 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == {"Fn::If": ["NotifyByEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
    assert found == ALARMED_METRICS
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Condition"] == "NotifyByEmail"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


def test_tracing_follows_its_parameter(template: dict[str, Any]) -> None:
    assert template["Parameters"]["EnableTracing"]["Default"] == "false"
    assert template["Globals"]["Function"]["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}


def _resolve(value: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        name, when_true, when_false = value["Fn::If"]
        return _resolve(when_true if conditions[name] else when_false, conditions)
    if isinstance(value, dict):
        return {key: _resolve(item, conditions) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, conditions) for item in value]
    return value


@pytest.fixture(scope="module")
def translated_body() -> dict[str, Any]:
    """The OpenAPI body SAM's translator gives the HTTP API."""
    body: dict[str, Any] = translated_template()["Resources"]["HttpApi"]["Properties"]["Body"]
    return body


@pytest.mark.slow  # runs SAM's translator in .venv-sam, which `make test` creates
@pytest.mark.parametrize("open_reads", [False, True], ids=["ReadRoutesAuth=AWS_IAM", "ReadRoutesAuth=NONE"])
def test_sam_translates_the_route_authorization(
    template: dict[str, Any], translated_body: dict[str, Any], open_reads: bool
) -> None:
    body = translated_body
    assert body["components"]["securitySchemes"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    conditions = {"OpenReadRoutes": open_reads}
    operations = {
        (method.upper(), path): _resolve(op, conditions)
        for path, item in body["paths"].items()
        for method, op in item.items()
    }
    assert set(operations) == set(_event_routes(template)) and ("POST", "/events") in operations
    for route, op in operations.items():
        assert op["x-amazon-apigateway-integration"]["payloadFormatVersion"] == "2.0", route
        signed = route in ALWAYS_SIGNED or not open_reads
        assert op["security"] == (IAM if signed else []), route


@pytest.mark.slow  # runs checkov from .venv-checkov, which `make test` creates
def test_checkov_finds_nothing_unexplained() -> None:
    checkov = require_venv_tool(CHECKOV_VENV, "checkov", "`make .venv-checkov/.installed`")
    result = subprocess.run(
        [str(checkov), "--file", str(TEMPLATE), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    checks, summary = report["results"], report["summary"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in checks["failed_checks"]]
    assert not failed, "checkov failed checks (fix them, or skip inline with the reason):\n" + "\n".join(failed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["passed"] >= 15 and summary["parsing_errors"] == 0, summary
    for check in checks["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) >= 40 and reason != "No comment provided", f"{check['check_id']} skipped without a reason"
