"""The GitHub workflows: PR previews of both stacks with the policy pack, and `make test`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
PREVIEW_SECRETS = (
    "PULUMI_ACCESS_TOKEN",
    "DIGITALOCEAN_TOKEN",
    "SPACES_ACCESS_KEY_ID",
    "SPACES_SECRET_ACCESS_KEY",
)


def load(name: str) -> dict[str, Any]:
    """A workflow file; PyYAML reads the ``on:`` key as True, so it is renamed back."""
    workflow: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def step_index(steps: list[dict[str, Any]], predicate: Any, what: str) -> int:
    """The position of the first step matching `predicate`."""
    for index, step in enumerate(steps):
        if predicate(step):
            return index
    raise AssertionError(f"no step {what} in {[s.get('name', s.get('uses')) for s in steps]}")


@pytest.fixture(scope="module")
def preview() -> dict[str, Any]:
    return load("preview.yml")


def test_preview_runs_on_pull_requests_and_may_comment(preview: dict[str, Any]) -> None:
    assert "pull_request" in preview["on"]
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_preview_covers_both_stacks(preview: dict[str, Any]) -> None:
    (job,) = preview["jobs"].values()
    stacks = job["strategy"]["matrix"]["stack"]
    assert sorted(stacks) == ["prod", "staging"]
    for stack in stacks:
        assert (ROOT / f"Pulumi.{stack}.yaml").is_file(), stack


def test_preview_sets_up_python_and_installs_before_pulumi(preview: dict[str, Any]) -> None:
    (job,) = preview["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    python = step_index(steps, lambda s: "actions/setup-python@" in s.get("uses", ""), "python")
    install = step_index(steps, lambda s: "pip install -e '.[infra]'" in s.get("run", ""), "pip")
    pulumi = step_index(steps, lambda s: s.get("uses") == "pulumi/actions@v7", "pulumi")
    assert python < install < pulumi
    assert str(steps[python]["with"]["python-version"]) == "3.12"


def test_preview_step_runs_preview_with_the_pack_and_comments(preview: dict[str, Any]) -> None:
    (job,) = preview["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("uses") == "pulumi/actions@v7"]
    inputs = step["with"]
    assert inputs["command"] == "preview"
    assert inputs["stack-name"] == "${{ matrix.stack }}"
    assert inputs["comment-on-pr"] is True
    assert inputs["policyPacks"] == "policy"
    assert (ROOT / inputs["policyPacks"] / "PulumiPolicy.yaml").is_file()


def test_preview_takes_credentials_from_repository_secrets(preview: dict[str, Any]) -> None:
    (job,) = preview["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("uses") == "pulumi/actions@v7"]
    env = preview.get("env", {}) | job.get("env", {}) | step.get("env", {})
    for name in PREVIEW_SECRETS:
        assert env.get(name) == f"${{{{ secrets.{name} }}}}", f"{name}={env.get(name)!r}"


def test_test_workflow_runs_make_test() -> None:
    workflow = load("test.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    (job,) = workflow["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    assert "make test" in runs, runs


def test_every_action_is_pinned_to_a_version() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in load(path.name)["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert "@" in step["uses"], f"{path.name}: {step['uses']} is not pinned"
