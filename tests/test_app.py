"""The factory, configuration layering and start-up validation (SPEC §2)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app import ConfigError, create_app
from app.config import setting_docs
from tests.support.servers import ROOT


def test_health_endpoints(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").get_json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["database"] == "ok"
    assert response.get_json()["checks"]["redis"] == "not_configured"


def test_json_bodies_are_compact_and_keep_insertion_order(app) -> None:  # type: ignore[no-untyped-def]
    from flask import jsonify

    with app.test_request_context():
        assert jsonify(b=1, a=[1, "é"]).get_data() == b'{"b":1,"a":[1,"\\u00e9"]}\n'
        assert jsonify(1, 2).get_json() == [1, 2]
        assert jsonify().get_json() is None
        with pytest.raises(TypeError):
            jsonify(1, a=2)


def test_readyz_checks_redis_when_configured(make_app, redis_url) -> None:  # type: ignore[no-untyped-def]
    assert make_app(REDIS_URL=redis_url).test_client().get("/readyz").get_json()["checks"][
        "redis"] == "ok"
    down = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client().get("/readyz")
    assert down.status_code == 503
    assert down.get_json()["checks"]["redis"] == "down"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACCESS_TOKEN_TTL", "fifteen"),
        ("ACCESS_TOKEN_TTL", -5),
        ("COOKIE_SECURE", "maybe"),
        ("MIGRATION_PHASE", "sideways"),
        ("LEGACY_HS256_SECRETS", "not-json"),
        ("LEGACY_ACCEPT_UNTIL", "next tuesday"),
        ("KEY_ENCRYPTION_KEY", "c2hvcnQ"),
    ],
)
def test_bad_setting_stops_start_up_naming_it(base_config, name, value, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=rf"setting {name}\b"):
        create_app({**base_config, name: value}, instance_path=str(tmp_path))


def test_environment_overrides_instance_config(base_config, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "config.py").write_text("ACCESS_TOKEN_TTL = 600\nJWKS_MAX_AGE = 120\n")
    monkeypatch.setenv("TESSERA_ACCESS_TOKEN_TTL", "300")
    config = {k: v for k, v in base_config.items()}
    app = create_app(config, instance_path=str(tmp_path))
    from app import state

    with app.app_context():
        assert state.settings().access_token_ttl.total_seconds() == 300  # env beats file
        assert state.settings().jwks_max_age == 120  # file beats default


def test_bad_environment_value_stops_the_real_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "TESSERA_ACCESS_TOKEN_TTL": "soon", "TESSERA_INSTANCE_PATH": str(tmp_path),
           "FLASK_APP": "wsgi"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,  # the failure is what this test is about
    )
    assert result.returncode != 0
    assert "setting ACCESS_TOKEN_TTL (env TESSERA_ACCESS_TOKEN_TTL)" in result.stderr


def test_embedded_default_generates_a_private_kek(tmp_path) -> None:  # type: ignore[no-untyped-def]
    create_app({}, instance_path=str(tmp_path))
    kek = tmp_path / "key-encryption-key"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    first = kek.read_text()
    create_app({}, instance_path=str(tmp_path))
    assert kek.read_text() == first  # made once, then reused


def test_database_url_without_kek_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="KEY_ENCRYPTION_KEY"):
        create_app({"DATABASE_URL": "sqlite:///x.db"}, instance_path=str(tmp_path))


def test_settings_repr_hides_secrets(app) -> None:  # type: ignore[no-untyped-def]
    from app import state

    with app.app_context():
        text = repr(state.settings())
    assert "key_encryption_key" not in text and "legacy_hs256_secrets" not in text


def test_settings_repr_hides_the_database_password() -> None:
    from app.config import load_settings

    settings = load_settings(
        {"DATABASE_URL": "postgresql+psycopg://tessera:hunter2-database@db/tessera"})
    assert settings.database_url is not None and "hunter2-database" not in repr(settings)


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, default, _doc in setting_docs():
        row = re.search(rf"^\| `{name}` \| ([^|]*) \|", readme, re.MULTILINE)
        assert row, f"README settings table lacks {name}"
        shown = row.group(1).strip()
        if default is None or default == ():
            continue
        expected = str(default).lower() if isinstance(default, bool) else str(default)
        assert expected in shown, f"README default of {name} is {shown}, code says {default}"


def test_instance_dir_is_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text()
    assert "instance/*" in ignored
    assert Path(ROOT / "instance" / "README.md").exists()


@pytest.mark.parametrize("sunset", ["2000-01-01T00:00:00Z", None])
def test_readyz_needs_the_asymmetric_key_in_phase_legacy(make_app, sunset) -> None:  # type: ignore[no-untyped-def]
    """Past the sunset phase legacy signs with it; before, aal2 sessions and the exchange do."""
    settings = {"LEGACY_HS256_SECRETS": ["an old shared secret of the old system"],
                "MIGRATION_PHASE": "legacy"}
    if sunset:
        settings["LEGACY_ACCEPT_UNTIL"] = sunset
    reply = make_app(keys=False, **settings).test_client().get("/readyz")
    assert reply.status_code == 503
    assert reply.get_json()["checks"]["signing_key"] == "missing"
    assert make_app(**settings).test_client().get("/readyz").status_code == 200
