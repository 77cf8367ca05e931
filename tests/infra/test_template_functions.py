"""The template's functions: it lints clean, each function is an image built from the repo root, and each has a
role of its own (issue 20): X-Ray only with tracing on, PassRole only to EMR Serverless, no role made by SAM."""

from __future__ import annotations

import json
import os
import subprocess
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.infra.conftest import (
    ROOT,
    SAM_INSTALL,
    SAM_VENV,
    TEMPLATE,
    _actions,
    _allows,
    _resolve,
    _resources_of_type,
    _role,
    _statements,
    require_venv_tool,
    translated_template,
)

FUNCTIONS = ("RecommendFunction", "PipelineFunction")
BASIC_EXECUTION = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
XRAY_WRITE = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}


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
