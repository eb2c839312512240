"""Extract the part of the provider schema the program uses, for `SchemaChecker` in CI.

The published ``pulumi-digitalocean`` schema is 3.6 MB; the tests need only the inputs of the
resources the program creates, the functions it calls, and the types those reach through ``$ref``.
Descriptions are dropped; everything else is copied verbatim. Regenerate after adding a resource
type::

    .venv/bin/python -m tests.infra.schema_subset /path/to/pulumi-digitalocean-schema.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SUBSET_PATH = Path(__file__).with_name("data") / "digitalocean-schema-subset.json"
SOURCE = "pulumi-digitalocean 4.84.1 published schema (descriptions removed)"
RESOURCES = (
    "digitalocean:index/databaseCluster:DatabaseCluster",
    "digitalocean:index/databaseDb:DatabaseDb",
    "digitalocean:index/databaseUser:DatabaseUser",
    "digitalocean:index/databaseConnectionPool:DatabaseConnectionPool",
    "digitalocean:index/databaseFirewall:DatabaseFirewall",
    "digitalocean:index/databasePostgresqlConfig:DatabasePostgresqlConfig",
    "digitalocean:index/monitorAlert:MonitorAlert",
    "digitalocean:index/spacesBucket:SpacesBucket",
)
FUNCTIONS = (
    "digitalocean:index/getDatabaseCa:getDatabaseCa",
    "digitalocean:index/getDroplet:getDroplet",
)
_DROPPED = ("description", "deprecationMessage", "language")
_PROPERTY_MAPS = ("properties", "inputProperties")
#: What a resource's entry keeps: only its inputs matter to the checker.
_RESOURCE_KEYS = ("inputProperties", "requiredInputs")


def subset(
    schema: Mapping[str, Any], resources: Iterable[str], functions: Iterable[str]
) -> dict[str, Any]:
    """The named resources and functions, and every type they reference, without prose."""
    picked_resources = {
        token: _strip(
            {
                k: schema["resources"][token][k]
                for k in _RESOURCE_KEYS
                if k in schema["resources"][token]
            }
        )
        for token in resources
    }
    picked_functions = {token: _strip(schema["functions"][token]) for token in functions}
    types: dict[str, Any] = {}
    pending = _refs([picked_resources, picked_functions])
    while pending:
        name = pending.pop()
        if name in types:
            continue
        types[name] = _strip(schema["types"][name])
        pending |= _refs(types[name]) - set(types)
    return {
        "source": SOURCE,
        "resources": picked_resources,
        "functions": picked_functions,
        "types": dict(sorted(types.items())),
    }


def _strip(node: Any, *, names: bool = False) -> Any:
    """Drop prose and language hints; `names` marks a map of property names, kept whole."""
    if isinstance(node, dict):
        return {
            k: _strip(v, names=k in _PROPERTY_MAPS)
            for k, v in node.items()
            if names or k not in _DROPPED
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {str(node["$ref"]).removeprefix("#/types/")} if "$ref" in node else set()
        found = {ref for ref in found if not ref.startswith("pulumi.json")}
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def main(argv: list[str]) -> None:
    """Write the subset of the schema file named on the command line."""
    schema = json.loads(Path(argv[0]).read_text())
    SUBSET_PATH.write_text(json.dumps(subset(schema, RESOURCES, FUNCTIONS), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
