"""Keeps the package boundaries of the house style true: app -> model <- training, batch -> model."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "model": {"app", "training", "fastapi", "pydantic", "pydantic_settings", "uvicorn"},
    "training": {"app", "fastapi", "uvicorn"},
    "app": {"training", "batch"},
    "batch": {"app", "training", "fastapi", "uvicorn"},
}


def imported_top_level_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_across_its_boundary(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_top_level_modules(path) & FORBIDDEN[package]) for path in files
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}
