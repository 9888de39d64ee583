"""Key and migration operations shared by the CLI and the admin API (one service)."""

from __future__ import annotations

import json
from datetime import timedelta

from .. import state
from ..audit import audit
from ..core import kek as kek_service
from ..core import key_report, migration
from ..core import keys as key_service
from ..extensions import db
from ..models import SigningKey
from .context import keyring, snapshot
from .revocation import revocations

__all__ = [
    "check_kek",
    "describe_signing_keys",
    "ensure_signing_keys",
    "list_signing_keys",
    "published_kids",
    "reseal_secrets",
    "revoke_signing_key",
    "rotate_signing_keys",
    "set_migration_phase",
]


def _kek() -> bytes:
    kek = state.settings().key_encryption_key
    assert kek is not None  # create_app always resolves one
    return kek


def _retired_lifetime() -> timedelta:
    s = state.settings()
    return s.access_token_ttl + s.clock_skew_leeway


def list_signing_keys() -> list[SigningKey]:
    """Every key, newest first, after marking retired keys past their lifetime expired."""
    if key_service.expire_retired(db.session(), state.now(), _retired_lifetime()):
        keyring().invalidate()  # this worker's JWKS drops them at once, the others in time
    return key_service.list_keys(db.session())


def describe_signing_keys() -> list[key_report.KeyView]:
    """Every key (newest first) with what an operator needs to know about it."""
    return key_report.describe_keys(
        list_signing_keys(), state.now(),
        rotation_interval=state.settings().key_rotation_interval,
        retired_lifetime=_retired_lifetime())


def published_kids() -> list[str]:
    """The kids this worker's JWKS serves right now (reloaded within KEYRING_REFRESH)."""
    return [str(k["kid"]) for k in json.loads(snapshot().jwks_body)["keys"]]


def check_kek() -> list[str]:
    """Live private keys and TOTP secrets that no configured key-encryption key opens,
    by name (empty: all good)."""
    return kek_service.check_keks(db.session(), _kek())


def ensure_signing_keys() -> None:
    """An active and a standby key exist afterwards. Refuses, in one line, when the
    configured key-encryption keys leave a sealed value unopened (a wrong list)."""
    unreadable = check_kek()
    if unreadable:
        more = f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        raise key_service.KeyError_(
            f"KEY_ENCRYPTION_KEY does not open {unreadable[0]}{more}: the key that sealed it "
            "is missing from the list (or the list is wrong). No new keys were made."
        )
    key_service.ensure_keys(db.session(), _kek(), state.settings().signing_algorithm, state.now())
    keyring().invalidate()


def reseal_secrets() -> kek_service.KekReport:
    """Re-seal every private key and TOTP secret under the first key-encryption key."""
    report = kek_service.reseal_all(db.session(), _kek())
    keyring().invalidate()
    audit("KEYS_RESEALED", result="failure" if report.unreadable else "success",
          reason="unreadable_values" if report.unreadable else None,
          details={"resealed": report.resealed, "current": report.current,
                   "unreadable": len(report.unreadable)})
    return report


def rotate_signing_keys(*, force: bool = False, if_due: bool = False) -> key_service.RotationResult:
    """Promote the standby key (SPEC §4); see ``core.keys.rotate``."""
    s = state.settings()
    result = key_service.rotate(
        db.session(), _kek(), s.signing_algorithm, state.now(),
        min_standby_age=timedelta(seconds=s.jwks_max_age),
        force=force,
        due_after=s.key_rotation_interval if if_due else None,
    )
    keyring().invalidate()
    return result


def revoke_signing_key(kid: str) -> SigningKey:
    """Emergency revocation of ``kid``; this worker stops accepting it at once."""
    now = state.now()
    row = key_service.revoke_key(db.session(), _kek(), state.settings().signing_algorithm, kid, now)
    # Its tokens live at most ACCESS_TOKEN_TTL; every worker refuses them from now on.
    s = state.settings()
    revocations().revoke_kid(kid, now + s.access_token_ttl + s.clock_skew_leeway * 2, now,
                             "key_revoked")
    keyring().invalidate()
    return row


def set_migration_phase(phase: str) -> str | None:
    """Store the phase for every worker; returns the previous stored phase."""
    if phase in ("legacy", "dual") and not state.settings().legacy_hs256_secrets:
        raise ValueError(f"phase {phase} needs LEGACY_HS256_SECRETS")
    previous = migration.set_phase(db.session(), phase, state.now())
    keyring().invalidate()
    return previous
