"""``template.yaml`` parsed for the structural tests, where the template tools' own venvs live, and the roles'
statements with a small IAM evaluator for the access tests.

CloudFormation's short-form tags such as ``!Sub`` become ``{"Fn::Sub": ...}``, so the tests run without AWS
access. aws-sam-cli and checkov each pin dependencies the app cannot share, so `make test` installs them into
``.venv-sam/`` and ``.venv-checkov/`` at the repo root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BUCKET

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM_VENV = ROOT / ".venv-sam"
CHECKOV_VENV = ROOT / ".venv-checkov"
SAM_INSTALL = "`python3 -m venv .venv-sam && .venv-sam/bin/pip install aws-sam-cli`"


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that maps ``!Ref x`` to ``{"Ref": x}`` and ``!Sub ...`` to ``{"Fn::Sub": ...}``."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=_CfnLoader)  # a SafeLoader subclass


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE.read_text())


def require_venv_tool(venv: Path, tool: str, install: str) -> Path:
    """The tool's path in its venv; a missing venv fails the test with how to create it (never a skip)."""
    path = venv / "bin" / tool
    if not path.exists():
        pytest.fail(f"{path} is missing: create it with `make test`, or {install}")
    return path


# Runs in .venv-sam: SAM's translator turns the template into plain CloudFormation (what gets deployed).
_TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
template = yaml_parse(sys.stdin.read())
for name in ("RecommendFunction", "PipelineFunction"):  # what `sam build` writes in place of the Dockerfile
    template["Resources"][name]["Properties"]["ImageUri"] = name.lower() + ":latest"
class NoManagedPolicies:
    def load(self):
        return {}
print(json.dumps(transform(template, {}, NoManagedPolicies())))
"""


def translated_template() -> dict[str, Any]:
    """template.yaml as SAM's translator expands it, run in .venv-sam."""
    python = require_venv_tool(SAM_VENV, "python", SAM_INSTALL)
    result = subprocess.run(
        [str(python), "-c", _TRANSLATE],
        input=TEMPLATE.read_text(),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    translated: dict[str, Any] = json.loads(result.stdout)
    return translated


# --- the roles' statements, and a small evaluator of them (issue 20): Allow statements, ``*`` wildcards,
# ``StringLike``/``StringEquals`` conditions. Used by test_template_access, _functions, _storage, _schedules.


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


def _non_s3_grants(template: dict[str, Any], function: str) -> dict[str, Any]:
    """Every non-S3 action a function may take, mapped to the resource it is granted on."""
    grants: dict[str, Any] = {}
    for statement in _statements(template, function):
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            if not action.startswith("s3:"):
                grants[action] = statement["Resource"]
    return grants
