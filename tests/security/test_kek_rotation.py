"""Key-encryption key rotation without downtime (issue 19, acceptance 2).

With private keys and TOTP secrets sealed under the old key (in the format from before
sealed values named their key), set ``[new, old]``, re-seal, drop the old key: every key
and every user's TOTP still works. A list that leaves a sealed value unopened refuses to
start with one line. Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from app import ConfigError, create_app
from app.core.crypto import Kek, SealError, key_id, seal, sealed_key_id, unseal
from app.extensions import db
from app.models import AuditEvent, SigningKey, TotpCredential
from tests.conftest import TEST_KEK
from tests.support.actions import AuthActions
from tests.support.mfa import enroll_totp
from tests.support.tokens import make_user

NEW = base64.urlsafe_b64encode(b"n" * 32).decode()
OTHER = base64.urlsafe_b64encode(b"o" * 32).decode()
OLD_KEY, NEW_KEY = base64.urlsafe_b64decode(TEST_KEK), b"n" * 32
# The apps of one test share the database, and so their rate-limit counters.
_MFA_LIMIT = "100/minute"


def _v1(key: bytes, plaintext: bytes, purpose: str) -> bytes:
    """A value sealed the way it was before sealed values named their key."""
    nonce = os.urandom(12)
    return b"\x01" + nonce + AESGCM(key).encrypt(nonce, plaintext, purpose.encode())


def _to_v1(app) -> None:  # type: ignore[no-untyped-def]
    """Turn every sealed value of ``app``'s database into the unlabelled format."""
    with app.app_context():
        for row in db.session.scalars(select(SigningKey)):
            purpose = f"signing-key:{row.kid}"
            row.private_key_encrypted = _v1(OLD_KEY, unseal(OLD_KEY, row.private_key_encrypted,
                                                            purpose), purpose)
        for cred in db.session.scalars(select(TotpCredential)):
            purpose = f"totp:{cred.user_id}"
            cred.secret_encrypted = _v1(OLD_KEY, unseal(OLD_KEY, cred.secret_encrypted, purpose),
                                        purpose)
        db.session.commit()


def _sealed_ids(app) -> set[str | None]:  # type: ignore[no-untyped-def]
    with app.app_context():
        blobs = list(db.session.scalars(select(SigningKey.private_key_encrypted)))
        blobs += list(db.session.scalars(select(TotpCredential.secret_encrypted)))
    return {sealed_key_id(b) for b in blobs}


def _logs_in_with_totp(app, clock, username: str, totp) -> None:  # type: ignore[no-untyped-def]
    """Password, then a fresh TOTP code (the private key signs, the TOTP secret opens)."""
    clock.advance(30)  # a new time step: codes are single use
    auth = AuthActions(app.test_client())
    challenge = auth.login(username=username).get_json()
    assert challenge.get("mfa_required") is True, challenge
    done = auth.client.post("/auth/mfa/verify", json={"mfa_token": challenge["mfa_token"],
                                                      "code": totp.at(clock())})
    assert done.status_code == 200, done.get_json()
    assert auth.me(done.get_json()["access_token"]).get_json()["acr"] == "aal2"


def test_rotate_the_kek_reseal_and_drop_the_old_one(make_app, clock) -> None:  # type: ignore[no-untyped-def]
    old = make_app(clock=clock, COOKIE_SECURE=False, RATELIMIT_MFA=_MFA_LIMIT)
    totps = {}
    for name in ("alice", "bob"):
        make_user(old, name)
        totps[name] = enroll_totp(old, name)
    assert old.test_cli_runner().invoke(args=["keys", "rotate", "--force"]).exit_code == 0
    _to_v1(old)  # today's data: unlabelled blobs
    assert _sealed_ids(old) == {None}
    _logs_in_with_totp(old, clock, "alice", totps["alice"])  # v1 still opens

    # Rolling deploys: first every host learns NEW while OLD still seals...
    learning = make_app(clock=clock, keys=False, COOKIE_SECURE=False, RATELIMIT_MFA=_MFA_LIMIT,
                        KEY_ENCRYPTION_KEY=json.dumps([TEST_KEK, NEW]))
    assert learning.test_cli_runner().invoke(args=["keys", "ensure"]).exit_code == 0
    _logs_in_with_totp(learning, clock, "alice", totps["alice"])
    # ...then NEW seals everywhere.
    both = make_app(clock=clock, keys=False, COOKIE_SECURE=False, RATELIMIT_MFA=_MFA_LIMIT,
                    KEY_ENCRYPTION_KEY=json.dumps([NEW, TEST_KEK]))
    runner = both.test_cli_runner()
    assert runner.invoke(args=["keys", "ensure"]).exit_code == 0
    _logs_in_with_totp(both, clock, "bob", totps["bob"])  # before re-sealing: old key opens
    resealed = runner.invoke(args=["keys", "reseal"])
    assert resealed.exit_code == 0, resealed.output
    assert "signing keys: 3 re-sealed, 0 already under the first key" in resealed.output
    assert "totp secrets: 2 re-sealed, 0 already under the first key" in resealed.output
    assert _sealed_ids(both) == {key_id(NEW_KEY)}
    again = runner.invoke(args=["keys", "reseal"])
    assert "signing keys: 0 re-sealed, 3 already under the first key" in again.output
    with both.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(
            AuditEvent.event == "KEYS_RESEALED").order_by(AuditEvent.id)))
    assert [r.details["resealed"] for r in rows] == [{"signing_keys": 3, "totp_secrets": 2},
                                                     {"signing_keys": 0, "totp_secrets": 0}]

    new = make_app(clock=clock, keys=False, COOKIE_SECURE=False, RATELIMIT_MFA=_MFA_LIMIT,
                   KEY_ENCRYPTION_KEY=NEW)
    assert new.test_cli_runner().invoke(args=["keys", "ensure"]).exit_code == 0
    for name, totp in totps.items():
        _logs_in_with_totp(new, clock, name, totp)
    rotated = new.test_cli_runner().invoke(args=["keys", "rotate", "--force"])
    assert rotated.exit_code == 0, rotated.output  # the new standby signs from now on
    _logs_in_with_totp(new, clock, "alice", totps["alice"])

    stale = make_app(clock=clock, keys=False, KEY_ENCRYPTION_KEY=TEST_KEK)
    refused = stale.test_cli_runner().invoke(args=["keys", "ensure"])
    assert refused.exit_code != 0
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: KEY_ENCRYPTION_KEY does not open ")
    assert "more" in lines[0]  # every sealed value is named or counted


def test_a_list_without_the_sealing_key_refuses_to_start(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    make_user(app, "alice")
    enroll_totp(app, "alice")
    wrong = make_app(keys=False, KEY_ENCRYPTION_KEY=json.dumps([NEW, OTHER]))
    refused = wrong.test_cli_runner().invoke(args=["keys", "ensure"])
    assert refused.exit_code != 0 and len(refused.output.strip().splitlines()) == 1
    assert "KEY_ENCRYPTION_KEY does not open signing key" in refused.output
    with app.app_context():
        assert db.session.scalar(select(SigningKey).where(SigningKey.state == "active"))
    reseal = wrong.test_cli_runner().invoke(args=["keys", "reseal"])
    assert reseal.exit_code != 0 and "no configured key opens" in reseal.output
    assert _sealed_ids(app) == {key_id(OLD_KEY)}  # nothing was rewritten


def test_only_the_totp_secrets_unopened_also_refuses(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    make_user(app, "alice")
    enroll_totp(app, "alice")
    with app.app_context():  # a TOTP secret sealed under a key the list lacks
        cred = db.session.scalars(select(TotpCredential)).one()
        cred.secret_encrypted = seal(b"o" * 32, b"JBSWY3DPEHPK3PXP", f"totp:{cred.user_id}")
        db.session.commit()
    refused = app.test_cli_runner().invoke(args=["keys", "ensure"])
    assert refused.exit_code != 0
    assert "does not open TOTP secret of user 1" in refused.output


@pytest.mark.parametrize(("value", "problem"), [
    (json.dumps([TEST_KEK, TEST_KEK]), "the same key twice"),
    (json.dumps([]), "at least one"),
    (json.dumps([TEST_KEK, "c2hvcnQ"]), "key 2 of the list must decode to 32 bytes"),
    (json.dumps([TEST_KEK, "not base64!"]), "key 2 of the list is not valid base64url"),
    ("[not json", "JSON list"),
])
def test_bad_lists_stop_start_up_naming_the_setting(base_config, value: str, problem: str,
                                                    tmp_path) -> None:
    config = {**base_config, "KEY_ENCRYPTION_KEY": value}
    with pytest.raises(ConfigError, match="KEY_ENCRYPTION_KEY") as caught:
        create_app(config, instance_path=str(tmp_path))
    assert problem in str(caught.value)


def test_sealed_values_name_their_key_and_bind_the_header() -> None:
    kek = Kek([NEW_KEY, OLD_KEY])
    sealed = seal(kek, b"secret", "totp:1")
    assert sealed_key_id(sealed) == key_id(NEW_KEY)
    assert unseal(Kek([OLD_KEY, NEW_KEY]), sealed, "totp:1") == b"secret"  # any order opens
    assert unseal(OLD_KEY, _v1(OLD_KEY, b"x", "p"), "p") == b"x"
    with pytest.raises(SealError, match="does not hold"):
        unseal(OLD_KEY, sealed, "totp:1")
    with pytest.raises(SealError):
        unseal(kek, sealed, "totp:2")  # another purpose
    relabelled = sealed[:1] + bytes.fromhex(key_id(OLD_KEY)) + sealed[9:]
    with pytest.raises(SealError):
        unseal(kek, relabelled, "totp:1")  # the header is authenticated
    assert "6e6e" not in repr(kek) and repr(kek).startswith("Kek(")
    assert bytes(kek) == NEW_KEY and kek.keys == (NEW_KEY, OLD_KEY)
