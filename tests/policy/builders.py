"""Build CrossGuard validation args by hand, as the pack's server would, and collect violations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

PROJECT = "handled-infra"


def urn(resource_type: str, name: str, *, stack: str = "prod") -> str:
    """A URN as the engine writes it."""
    return f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}"


def options(*, protect: bool = False) -> PolicyResourceOptions:
    """Resource options with everything but `protect` at its default."""
    return PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def resource_args(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str = "res",
    stack: str = "prod",
    protect: bool = False,
) -> ResourceValidationArgs:
    """The args of a resource validation."""
    return ResourceValidationArgs(
        resource_type=resource_type,
        props=props,
        urn=urn(resource_type, name, stack=stack),
        name=name,
        opts=options(protect=protect),
        provider=None,
    )


def stack_resource(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str,
    depends_on: Mapping[str, list[PolicyResource]] | None = None,
    protect: bool = False,
) -> PolicyResource:
    """One resource of a stack validation; `depends_on` maps an input to its sources."""
    return PolicyResource(
        resource_type=resource_type,
        props=props,
        urn=urn(resource_type, name),
        name=name,
        opts=options(protect=protect),
        provider=None,
        parent=None,
        dependencies=[r for sources in (depends_on or {}).values() for r in sources],
        property_dependencies=dict(depends_on or {}),
    )


def stack_args(resources: list[PolicyResource]) -> StackValidationArgs:
    """The args of a stack validation."""
    return StackValidationArgs(resources=resources)


@dataclass
class Violations:
    """The `report_violation` callback: records each message and URN."""

    reported: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.reported.append((message, urn))

    @property
    def messages(self) -> list[str]:
        """The messages alone."""
        return [message for message, _ in self.reported]
