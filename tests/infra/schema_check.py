"""Check recorded resource inputs against the provider's published Pulumi schema.

Mocks accept anything, so a misspelled property or a wrong type would pass every other test.
`SchemaChecker.problems(token, inputs)` finds ``resources[token]`` in the provider's schema
(``shared/data/pulumi-digitalocean-schema.json``, beside the repository in CI as on a
developer's machine) and returns one message per problem:

- a property the schema does not declare (inputs arrive camelCase, as the engine sends them);
- a required input that is missing;
- a primitive type mismatch (integers arrive as floats, so ``1.0`` is an integer);
- nested objects and arrays, resolved through ``$ref`` into ``types``, checked the same way;
- a value outside a string enum the schema declares (directly, or as one branch of a ``oneOf``,
  as for regions and database size slugs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The DigitalOcean provider's published schema, in ``shared/`` beside this repository.
SCHEMA_PATH = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "pulumi-digitalocean-schema.json"
)

_REF_PREFIX = "#/types/"


class SchemaChecker:
    """Validates inputs of ``digitalocean:*`` resources against the provider schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.resources: Mapping[str, Any] = schema["resources"]
        self.types: Mapping[str, Any] = schema["types"]

    @classmethod
    def load(cls, path: Path = SCHEMA_PATH) -> SchemaChecker:
        """Read the provider's schema file (a missing file is an error, never a skip)."""
        return cls(json.loads(path.read_text()))

    def problems(self, token: str, inputs: Mapping[str, Any]) -> list[str]:
        """Every way `inputs` disagree with the schema of resource `token` (empty: all good)."""
        resource = self.resources.get(token)
        if resource is None:
            return [f"{token}: not a resource of the provider schema"]
        return self._object(
            token,
            inputs,
            resource.get("inputProperties", {}),
            resource.get("requiredInputs", []),
        )

    def _object(
        self, where: str, value: Any, properties: Mapping[str, Any], required: list[str]
    ) -> list[str]:
        if not isinstance(value, Mapping):
            return [f"{where}: expected an object, got {value!r}"]
        found: list[str] = []
        for name in required:
            if value.get(name) is None:
                found.append(f"{where}: required input {name!r} is missing")
        for name, item in value.items():
            if name.startswith("__"):  # engine bookkeeping such as __defaults
                continue
            spec = properties.get(name)
            if spec is None:
                found.append(f"{where}: unknown property {name!r} (known: {sorted(properties)})")
                continue
            found.extend(self._value(f"{where}.{name}", item, spec))
        return found

    def _value(self, where: str, value: Any, spec: Mapping[str, Any]) -> list[str]:
        if value is None:
            return []
        if "oneOf" in spec:
            return self._one_of(where, value, spec["oneOf"])
        if "$ref" in spec:
            return self._ref(where, value, spec["$ref"])
        kind = spec.get("type")
        if kind == "array":
            if not isinstance(value, list):
                return [f"{where}: expected an array, got {value!r}"]
            return [
                p
                for i, v in enumerate(value)
                for p in self._value(f"{where}[{i}]", v, spec["items"])
            ]
        if kind == "object":
            if not isinstance(value, Mapping):
                return [f"{where}: expected an object, got {value!r}"]
            extra = spec.get("additionalProperties", {"type": "string"})
            return [p for k, v in value.items() for p in self._value(f"{where}.{k}", v, extra)]
        if kind is not None and not _is_primitive(kind, value):
            return [f"{where}: expected {kind}, got {value!r}"]
        return []

    def _one_of(self, where: str, value: Any, branches: list[Mapping[str, Any]]) -> list[str]:
        # A branch naming an enum type is the schema declaring the allowed values: hold to it.
        for branch in branches:
            ref = branch.get("$ref", "")
            if "enum" in self.types.get(ref.removeprefix(_REF_PREFIX), {}):
                return self._ref(where, value, ref)
        failures = [self._value(where, value, branch) for branch in branches]
        if any(not f for f in failures):
            return []
        return [f"{where}: {value!r} matches no branch of oneOf: {failures}"]

    def _ref(self, where: str, value: Any, ref: str) -> list[str]:
        if not ref.startswith(_REF_PREFIX):
            return []  # pulumi.json#/Archive and the like: not used by these resources
        spec = self.types.get(ref.removeprefix(_REF_PREFIX))
        if spec is None:
            return [f"{where}: {ref} is not in the schema's types"]
        if "enum" in spec:
            allowed = [member["value"] for member in spec["enum"]]
            if value not in allowed:
                return [f"{where}: {value!r} is not one of {allowed}"]
            return []
        return self._object(where, value, spec.get("properties", {}), spec.get("required", []))


def _is_primitive(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float)
    return True
