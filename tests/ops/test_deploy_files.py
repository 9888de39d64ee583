"""deploy/ stays in step with the code: the settings file names real settings, and
systemd accepts the units. (The nginx site is exercised by tests/ops/test_topology.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import setting_docs
from tests.support.servers import ROOT

DEPLOY = ROOT / "deploy"
# Read by gunicorn.conf.py and create_app rather than by the settings table.
_PROCESS_SETTINGS = {"TESSERA_BIND", "TESSERA_WORKERS", "TESSERA_THREADS", "TESSERA_INSTANCE_PATH",
                     "TESSERA_ACCESS_LOG"}


def _names(text: str) -> set[str]:
    """Every NAME of a `NAME=value` line, commented out or not."""
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_the_environment_template_names_only_real_settings() -> None:
    names = _names((DEPLOY / "tessera.env.example").read_text())
    known = {f"TESSERA_{name}" for name, _, _ in setting_docs()} | {"DATABASE_URL", "REDIS_URL"}
    assert sorted(names - known - _PROCESS_SETTINGS) == []
    gunicorn_conf = (ROOT / "gunicorn.conf.py").read_text()
    for name in names & _PROCESS_SETTINGS - {"TESSERA_INSTANCE_PATH"}:
        assert f'"{name}"' in gunicorn_conf, name
    # What a production host cannot do without (SPEC §2, issue 18).
    assert {"DATABASE_URL", "REDIS_URL", "TESSERA_ISSUER", "TESSERA_KEY_ENCRYPTION_KEY",
            "TESSERA_TRUSTED_PROXIES"} <= names


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        # verify wants each ExecStart binary to exist: /opt/tessera is not installed here.
        text = unit.read_text().replace("/opt/tessera/bin/gunicorn", "/bin/true")
        (tmp_path / unit.name).write_text(text.replace("/opt/tessera/bin/tessera", "/bin/true"))
        units.append(str(tmp_path / unit.name))
    assert len(units) == 5
    result = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr
