"""Layering: evaluation and task code import nothing from `latentloop.training`, so evaluating or solving with a
checkpoint needs no training machinery (the puzzle embedding's sign-SGD lives beside its table for that reason)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "latentloop"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an `import` or `from ... import` names in the file, at any depth (function bodies too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def training_imports(package: str) -> list[str]:
    return [f"{path.relative_to(SRC.parent)}:{line}: {module}"
            for path in sorted((SRC / package).rglob("*.py"))
            for line, module in imported_modules(path)
            if module == "latentloop.training" or module.startswith("latentloop.training.")]


@pytest.mark.parametrize("package", ["evaluation", "tasks"])
def test_package_does_not_import_training(package: str) -> None:
    assert training_imports(package) == []


def test_the_scan_sees_training_imports() -> None:
    assert any(found.endswith(": latentloop.training.optim") for found in training_imports("training"))
