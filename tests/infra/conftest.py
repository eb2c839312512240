"""Fixtures for the Pulumi program's tests: one mocked run per stack, and the schema checker."""

from __future__ import annotations

import pytest

from tests.infra.harness import ProgramRun, run_program
from tests.infra.schema_check import SchemaChecker


@pytest.fixture(scope="session", params=["prod", "staging"])
def stack_run(request: pytest.FixtureRequest) -> ProgramRun:
    """The program run once per stack, config from ``Pulumi.<stack>.yaml``."""
    stack: str = request.param
    return run_program(stack)


@pytest.fixture(scope="session")
def prod_run() -> ProgramRun:
    """The program run for prod."""
    return run_program("prod")


@pytest.fixture(scope="session")
def schema() -> SchemaChecker:
    """The provider schema checker."""
    return SchemaChecker.load()
