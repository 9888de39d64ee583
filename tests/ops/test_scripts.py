"""The test command's own set-up (scripts/lib.sh): PostgreSQL found or installed, failures shown."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.servers import ROOT

# A PATH with Debian's usual directories only: no /usr/local/bin, where a machine
# image may keep binaries that a fresh Debian does not have.
_DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _bash(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"set -euo pipefail; . scripts/lib.sh; {script}"],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PATH": _DEBIAN_PATH, "HOME": str(tmp_path),
                               "VENV": str(Path(ROOT / ".venv"))})


@pytest.mark.slow
def test_postgres_binaries_found_without_them_on_the_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _bash('ensure_postgres; echo "PG_BIN=$PG_BIN"', tmp_path)
    assert done.returncode == 0, done.stderr
    pg_bin = Path(done.stdout.strip().rsplit("PG_BIN=", 1)[1])
    assert (pg_bin / "initdb").exists() and (pg_bin / "pg_ctl").exists()
    assert not str(pg_bin).startswith("/usr/local")


@pytest.mark.slow
def test_a_postgres_that_fails_to_start_prints_its_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Under /tmp, not pytest's tmp_path: PostgreSQL's user must reach the directory.
    data = tempfile.mkdtemp(prefix="tessera-pg-fail-")
    done = _bash(f'PG_OPTIONS="-c shared_buffers=plenty" pg_start {data} || status=$?; '
                 f'pg_stop {data}; exit "${{status:-0}}"', tmp_path)
    assert done.returncode != 0
    assert "PostgreSQL start failed" in done.stderr
    assert "shared_buffers" in done.stderr  # the server's own complaint, from its log
