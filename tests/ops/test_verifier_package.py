"""The verifier package stands alone (issue 17, acceptance 1).

``verifier/`` is copied out of the checkout, installed with its ``test`` extra
into a fresh virtualenv (its dependencies from the configured package index,
nothing from this one), and its own tests run there: no ``tessera``, no ``app``,
no Tessera dependency on the path.

It runs in the SQLite pass only: it touches no database.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL
from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.slow,
    # A bound (an install from the index, then the tests), not a speed check.
    pytest.mark.timeout(300),
    pytest.mark.skipif(bool(POSTGRES_URL), reason="runs in the SQLite pass (no database)"),
]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
                            check=False)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{args} failed:\n{output}"
    return result


def test_package_installs_alone_and_its_tests_pass(tmp_path: Path) -> None:
    source = tmp_path / "verifier"
    shutil.copytree(ROOT / "verifier", source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          f"{source}[test]"], tmp_path)
    code = ("import importlib.util as u; "
            "print([n for n in ('tessera', 'app', 'joserfc', 'sqlalchemy') if u.find_spec(n)])")
    probe = _run([python, "-c", code], tmp_path)
    assert probe.stdout.strip() == "[]"  # nothing of Tessera, nor its dependencies
    result = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], source)
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
