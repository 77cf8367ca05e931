"""``template.yaml`` parsed for the structural tests, and where the template tools' own venvs live.

CloudFormation's short-form tags such as ``!Sub`` become ``{"Fn::Sub": ...}``, so the tests run without AWS
access. aws-sam-cli and checkov each pin dependencies the app cannot share, so `make test` installs them into
``.venv-sam/`` and ``.venv-checkov/`` at the repo root.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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
