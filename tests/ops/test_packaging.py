"""The package never names itself: installed, it is ``tessera``, not ``app`` (see the
README's packaging decision). tests/ops/test_wheel_install.py proves it end to end;
these say where, in a second."""

from __future__ import annotations

import ast
import re

from tests.support.servers import ROOT


def _absolute_own_imports(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(name == "app" or name.startswith("app.") for name in names):
            lines.append(node.lineno)
    return lines


def test_the_package_imports_its_own_modules_relatively() -> None:
    found = {str(path.relative_to(ROOT)): lines for path in sorted((ROOT / "app").rglob("*.py"))
             if (lines := _absolute_own_imports(path.read_text()))}
    # `from app.x import y` inside app/ breaks the installed package: make it `from .x import y`.
    assert found == {}


def test_migrations_do_not_import_the_application() -> None:
    pattern = re.compile(r"(?<![\w.])app\.\w")
    found = [f"{path.name}:{number}" for path in sorted((ROOT / "migrations").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line)]
    # Alembic loads them by path, also from the installed package, where `app` does not exist.
    assert found == []
