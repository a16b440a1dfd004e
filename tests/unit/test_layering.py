"""Dependencies point one way: gateway -> federation -> node (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package -> the packages it must never import
FORBIDDEN = {"node": {"federation", "gateway"}, "federation": {"gateway"}}


def imported_packages(source: str) -> set[str]:
    """Top-level package names a module imports, absolute imports only."""
    found: set[str] = set()
    for statement in ast.walk(ast.parse(source)):
        if isinstance(statement, ast.Import):
            found |= {alias.name.split(".")[0] for alias in statement.names}
        elif isinstance(statement, ast.ImportFrom) and statement.level == 0 and statement.module:
            found.add(statement.module.split(".")[0])
    return found


def violations(root: Path) -> list[str]:
    """'path imports package' for every import that breaks the layering under `root`."""
    found = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for name in sorted(imported_packages(path.read_text()) & banned):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


class TestLayering:
    def test_succeeds_on_this_tree(self) -> None:
        assert violations(ROOT) == []

    @pytest.mark.parametrize(
        ("package", "line"),
        [
            ("node", "import gateway.server"),
            ("node", "from federation import peers"),
            ("node", "from gateway.cli import main"),
            ("federation", "from gateway import server"),
        ],
    )
    def test_fails_when_a_lower_layer_imports_a_higher(
        self, tmp_path: Path, package: str, line: str
    ) -> None:
        (tmp_path / package / "deep").mkdir(parents=True)
        (tmp_path / package / "deep" / "module.py").write_text(f"{line}\n")
        assert violations(tmp_path) == [
            f"{package}/deep/module.py imports {line.split()[1].split('.', maxsplit=1)[0]}"
        ]

    def test_allows_the_downward_direction(self, tmp_path: Path) -> None:
        (tmp_path / "federation").mkdir()
        (tmp_path / "federation" / "m.py").write_text("from node.store import upgrade\n")
        assert violations(tmp_path) == []
