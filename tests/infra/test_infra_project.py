"""The project and stack files, and the shape of the program: thin entry point, config read once."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from infra.config import KEYS
from tests.infra.harness import ROOT, stack_config


def test_project_file_names_the_python_program_in_infra() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "handled-infra"
    assert project["runtime"]["name"] == "python"
    assert project["main"] == "infra/"


def test_stack_files_hold_only_known_values() -> None:
    for stack in ("prod", "staging"):
        document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        assert set(document) == {"config"}, f"Pulumi.{stack}.yaml: {sorted(document)}"
        unknown = set(stack_config(stack)) - set(KEYS)
        assert not unknown, f"Pulumi.{stack}.yaml has unknown keys {sorted(unknown)}"


def test_main_is_thin() -> None:
    tree = ast.parse((ROOT / "infra" / "__main__.py").read_text())
    definitions = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    ]
    assert definitions == [], f"infra/__main__.py defines {definitions}"


def test_config_is_read_in_one_place() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "infra").rglob("*.py"))
        if "pulumi.Config(" in path.read_text() or "get_config(" in path.read_text()
    ]
    assert readers == ["infra/config.py"]


def test_every_component_parents_its_children_and_registers_outputs_last() -> None:
    for path in sorted((ROOT / "infra" / "components").glob("*.py")):
        source = path.read_text()
        if "ComponentResource)" not in source:
            continue
        init = _init_of_component(Path(path))
        last = init.body[-1]
        assert isinstance(last, ast.Expr), f"{path.name}: __init__ must end with register_outputs"
        assert "register_outputs" in ast.unparse(last), f"{path.name}: {ast.unparse(last)}"
        assert "parent=self" in source, f"{path.name}: children without parent=self"


def _init_of_component(path: Path) -> ast.FunctionDef:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            "ComponentResource" in ast.unparse(base) for base in node.bases
        ):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return item
    raise AssertionError(f"{path.name}: no ComponentResource.__init__")
