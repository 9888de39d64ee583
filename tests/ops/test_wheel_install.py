"""The packaged product (issue 18, acceptance 1): sdist, then a wheel built from it,
installed into a fresh virtualenv and used from an empty directory. The strict
verifier (``verifier/``, distribution ``tessera-verifier``) is built the same way and
installed beside it: Tessera requires it.

Nothing of the checkout is on the path there: the package comes from the
wheel alone (installed as ``tessera``; ``app`` does not exist), and so do its
templates, stylesheet and migrations. To keep the test fast, the new
virtualenv takes the *dependencies* from the test's own virtualenv (a ``.pth``
line naming its site-packages, whose own ``.pth`` files, among them the
editable install of the checkout, are not run from there) instead of
downloading them again; ``pip check`` then proves that the wheel's declared
requirements are all satisfied by what it sees.

It runs in the SQLite pass only: its database is its own, in a temporary
instance directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import POSTGRES_URL
from tests.support.servers import ROOT, free_port, wait_until

pytestmark = [
    pytest.mark.slow,
    # A bound (a build, or a cluster to start, in the first test), not a speed check.
    pytest.mark.timeout(240),
    pytest.mark.skipif(bool(POSTGRES_URL), reason="runs in the SQLite pass (own database)"),
]

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a long admin password 7"
# Never copied into the build: local state of the checkout, not the project.
_SKIP = {".git", ".venv", "build", "dist", "artifacts", "__pycache__", ".pytest_cache",
         ".mypy_cache", ".ruff_cache"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    local_instance = Path(directory) == ROOT / "instance"  # a developer's database and keys
    return {name for name in names
            if name in _SKIP or name.endswith((".egg-info", ".pyc"))
            or (local_instance and name != "README.md")}


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False,
                            **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdists and wheels of Tessera and of the verifier, each wheel built from its sdist
    (as `python -m build` does)."""
    tmp = tmp_path_factory.mktemp("dist")
    shutil.copytree(ROOT, tmp / "src", ignore=_ignore)  # leave no build/ or egg-info behind
    for project in (tmp / "src" / "verifier", tmp / "src"):
        _run([sys.executable, "-m", "build", "--outdir", str(tmp / "out"), str(project)])
    return tmp / "out"


def _wheel(dist: Path, name: str = "tessera") -> Path:
    (wheel,) = dist.glob(f"{name}-*.whl")
    return wheel


def test_the_verifier_wheel_carries_its_package_and_nothing_of_tessera(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist, "tessera_verifier")) as archive:
        names = set(archive.namelist())
    expected = {f"tessera_verifier/{path.name}"
                for path in (ROOT / "verifier" / "src" / "tessera_verifier").iterdir()
                if path.is_file()}
    assert sorted(expected - names) == []
    assert {name.split("/")[0] for name in names} == {"tessera_verifier", _dist_info(names)}


def test_the_wheel_carries_every_file_of_app_and_migrations_as_tessera(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(info).decode()
    expected = {
        f"{target}/{path.relative_to(ROOT / source).as_posix()}"
        for source, target in (("app", "tessera"), ("migrations", "tessera/migrations"))
        for path in (ROOT / source).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert sorted(expected - names) == []
    assert {name.split("/")[0] for name in names} == {"tessera", _dist_info(names)}
    assert "tessera = tessera.console:main" in entry_points


def _dist_info(names: set[str]) -> str:
    return next(n.split("/")[0] for n in names if ".dist-info/" in n)


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed (dependencies: see the module's docstring)."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    python = root / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    Path(site.stdout.strip(), "test-dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    _run([*pip, "install", "--no-deps", "--no-index", "--quiet", str(_wheel(dist)),
          str(_wheel(dist, "tessera_verifier"))])
    _run([*pip, "check"])
    return root


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty working directory and an environment that names nothing of the checkout."""
    workdir = tmp_path / "empty"
    workdir.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "TESSERA_INSTANCE_PATH": str(tmp_path / "instance")}
    return workdir, env


def test_installed_package_migrates_creates_an_admin_and_serves_the_login_page(
    venv: Path, outside: tuple[Path, dict[str, str]]
) -> None:
    workdir, env = outside
    bin_ = venv / "bin"
    probe = ("import importlib.util, tessera, tessera_verifier; print(tessera.__file__, "
             "tessera_verifier.__file__, importlib.util.find_spec('app'))")
    found = _run([str(bin_ / "python"), "-c", probe], cwd=workdir, env=env)
    package_file, verifier_file, app_spec = found.stdout.split()
    assert Path(package_file).is_relative_to(venv) and app_spec == "None"
    assert Path(verifier_file).is_relative_to(venv)  # the wheel's, not the checkout's

    _run([str(bin_ / "tessera"), "db", "upgrade"], cwd=workdir, env=env)
    _run([str(bin_ / "tessera"), "keys", "ensure"], cwd=workdir, env=env)
    _run([str(bin_ / "tessera"), "users", "create-admin", "--username", "root",
          "--password-stdin"], cwd=workdir, env=env, input=PASSWORD + "\n")
    with sqlite3.connect(Path(env["TESSERA_INSTANCE_PATH"]) / "tessera.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() != []
    assert list(workdir.iterdir()) == []  # nothing written where the commands ran

    with _gunicorn(bin_ / "python", workdir, env) as base:
        _log_in_with_chromium(base)


class _Server:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process, self.log = process, log


def _answers(port: int, server: _Server) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError("gunicorn exited:\n" + server.log.read_text()[-3000:])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def _gunicorn(python: Path, workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """gunicorn from the new virtualenv serving the installed package's app factory."""
    port = free_port()
    log = workdir.parent / "gunicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(python), "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--threads", "2", "tessera:create_app()"],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = _Server(process, log)
    try:
        wait_until(lambda: _answers(port, server), timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _log_in_with_chromium(base: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the test command installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            statuses: dict[str, int] = {}
            page.on("response", lambda r: statuses.__setitem__(r.url.split("?")[0], r.status))
            response = page.goto(f"{base}/login")
            assert response is not None and response.status == 200
            # The stylesheet came from the package and was applied.
            stylesheets = {url: status for url, status in statuses.items() if url.endswith(".css")}
            assert list(stylesheets.values()) == [200], stylesheets
            assert page.evaluate("[...document.styleSheets].map(s => s.cssRules.length)")[0] > 0
            page.fill("#username", "root")
            page.fill("#password", PASSWORD)
            page.click("button:has-text('Log in')")
            expect(page).to_have_url(f"{base}/account")
            expect(page.locator("#username")).to_have_text("root")
        finally:
            browser.close()
