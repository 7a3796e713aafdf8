"""The package boundaries docs/architecture.md states, read from the import statements."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package -> top-level packages of this repository it must never import
FORBIDDEN = {
    "appliance": {"workers", "modelbuild", "bench", "tests"},
    "workers": {"appliance", "modelbuild", "bench", "tests"},
    "ipc": {"appliance", "workers", "modelbuild", "bench", "tests"},
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.timeout(60)
@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_it_may(package):
    wrong = {
        f"{path.relative_to(REPO)}: {name}"
        for path in (REPO / package).rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN[package]
    }
    assert not wrong, sorted(wrong)


@pytest.mark.timeout(60)
def test_the_client_package_imports_nothing_of_the_server():
    wrong = {
        f"{path.relative_to(REPO)}: {name}"
        for path in (REPO / "appliance" / "client").rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("appliance.") and not name.startswith("appliance.client")
    }
    assert not wrong, sorted(wrong)
