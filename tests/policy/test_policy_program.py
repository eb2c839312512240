"""The pack against what the real program registers: both stacks pass, a weakened one fails."""

from __future__ import annotations

import ast
import runpy
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
import yaml
from pulumi_policy import (
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.policies import PACK_NAME, POLICIES
from tests.infra.harness import ProgramRun, run_program
from tests.policy.builders import Violations, options

ROOT = Path(__file__).resolve().parents[2]


def evaluate(run: ProgramRun) -> list[str]:
    """Every violation the pack reports on the program's recorded resources."""
    custom = [r for r in run.resources if r.custom]
    resources: dict[str, PolicyResource] = {}
    for recorded in custom:
        resources[recorded.urn] = PolicyResource(
            resource_type=recorded.type,
            props=recorded.inputs,
            urn=recorded.urn,
            name=recorded.name,
            opts=options(protect=recorded.protect),
            provider=None,
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
    for recorded in custom:
        resources[recorded.urn].property_dependencies = {
            key: [resources[u] for u in urns if u in resources]
            for key, urns in recorded.dependencies.items()
        }
    violations = Violations()
    for policy in POLICIES:
        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(list(resources.values())), violations)
        elif isinstance(policy, ResourceValidationPolicy):
            for resource in resources.values():
                args = ResourceValidationArgs(
                    resource_type=resource.resource_type,
                    props=resource.props,
                    urn=resource.urn,
                    name=resource.name,
                    opts=resource.opts,
                    provider=None,
                )
                policy.validate(args, violations)
    return violations.messages


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_program_passes_the_pack(stack: str) -> None:
    assert evaluate(run_program(stack)) == []


def test_an_unprotected_prod_cluster_fails_the_pack() -> None:
    run = run_program("prod", overrides={"protect": "false"})
    assert evaluate(run) == [
        "cluster 'primary-cluster' in stack 'prod' is not protected (protect=True)"
    ]


def test_a_session_mode_pool_fails_the_pack() -> None:
    run = run_program("staging", overrides={"poolMode": "session"})
    assert evaluate(run) == [
        "pool 'primary-pool' is in mode 'session'; PRIMARY's pools use 'transaction'"
    ]


def test_policy_pack_is_built_only_in_its_entry_point() -> None:
    builders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "policy").glob("*.py"))
        if any(
            isinstance(node, ast.Call) and ast.unparse(node.func) == "PolicyPack"
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert builders == ["policy/__main__.py"]
    assert "PACK_NAME" in (ROOT / "policy" / "__main__.py").read_text()
    assert PACK_NAME == "handled-infra-policies"


def test_entry_point_builds_the_pack_from_every_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.append(kwargs))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert len(built) == 1
    assert built[0]["name"] == PACK_NAME
    assert built[0]["policies"] == POLICIES
    assert built[0]["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY


def test_pack_metadata_names_python_and_its_requirements() -> None:
    metadata = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert metadata["runtime"]["name"] == "python"
    assert metadata["description"]
    requirements = (ROOT / "policy" / "requirements.txt").read_text()
    assert "pulumi-policy" in requirements
