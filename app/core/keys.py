"""Signing keys in the database: generation, sealing and the lifecycle of SPEC §4.

    standby ──rotate──▶ active ──rotate──▶ retired ──TTL+leeway──▶ expired
       └────────────── revoke (any live state) ──────────────▶ revoked

Exactly one key is active: a partial unique index enforces it and every
change runs in one transaction that checks what it changes (rowcounts), so two
workers rotating at once cannot both win.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..models import SigningKey
from .crypto import seal, unseal
from .errors import CoreError

__all__ = [
    "AsymmetricKey",
    "KeyError_",
    "RotationRefused",
    "UnknownKey",
    "RotationResult",
    "ensure_keys",
    "expire_retired",
    "generate_key",
    "list_keys",
    "load_private_key",
    "revoke_key",
    "rotate",
]

log = logging.getLogger(__name__)
AsymmetricKey = ECKey | RSAKey
_ATTEMPTS = 8


class KeyError_(CoreError):
    """A key operation cannot be done as asked (name avoids the builtin KeyError)."""

    code = "key_refused"


class RotationRefused(KeyError_):
    code = "rotation_refused"


class UnknownKey(KeyError_):
    code = "unknown_key"


@dataclass(frozen=True)
class RotationResult:
    rotated: bool
    active_kid: str
    retired_kid: str | None
    standby_kid: str | None
    message: str


def generate_key(alg: str) -> AsymmetricKey:
    """A new private key for ``alg`` (ES256: P-256; RS256: 2048-bit RSA)."""
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    raise KeyError_(f"unsupported signing algorithm {alg}")


def _purpose(kid: str) -> str:
    return f"signing-key:{kid}"


def _new_row(kek: bytes, alg: str, state: str, now: datetime) -> SigningKey:
    key = generate_key(alg)
    kid = key.thumbprint()  # RFC 7638: derived from the public key, never secret
    public = key.as_dict(private=False)
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    return SigningKey(
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=json.dumps(public, sort_keys=True),
        private_key_encrypted=seal(kek, key.as_pem(private=True), _purpose(kid)),
        created_at=now,
        activated_at=now if state == "active" else None,
    )


def load_private_key(row: SigningKey, kek: bytes) -> AsymmetricKey:
    """Open the sealed private key of ``row`` (raises crypto.SealError on a wrong KEK)."""
    pem = unseal(kek, row.private_key_encrypted, _purpose(row.kid))
    cls = ECKey if row.alg == "ES256" else RSAKey
    return cls.import_key(pem)


def list_keys(session: Session) -> list[SigningKey]:
    """Every key, newest first."""
    return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc())))


def _by_state(session: Session, state: str) -> SigningKey | None:
    query = select(SigningKey).where(SigningKey.state == state).order_by(SigningKey.created_at)
    return session.scalars(query).first()


def ensure_keys(session: Session, kek: bytes, alg: str, now: datetime) -> None:
    """Make sure an active and a standby key exist (first start, or after a revocation)."""
    for _ in range(_ATTEMPTS):
        try:
            if _by_state(session, "active") is None:
                session.add(_new_row(kek, alg, "active", now))
                session.flush()
            if _by_state(session, "standby") is None:
                session.add(_new_row(kek, alg, "standby", now))
            session.commit()
            return
        except (IntegrityError, OperationalError):  # another worker did it first: look again
            session.rollback()
    raise KeyError_("could not create signing keys (database busy)")


def rotate(
    session: Session,
    kek: bytes,
    alg: str,
    now: datetime,
    *,
    min_standby_age: timedelta,
    force: bool = False,
    due_after: timedelta | None = None,
) -> RotationResult:
    """Promote the standby key, retire the active one and make a new standby.

    ``min_standby_age`` (the JWKS cache lifetime) protects verifiers that have
    not yet fetched the standby key; ``force`` overrides it. With ``due_after``
    the rotation happens only if the active key is at least that old.
    """
    for _ in range(_ATTEMPTS):
        try:
            return _rotate_once(session, kek, alg, now, min_standby_age, force, due_after)
        except (IntegrityError, OperationalError, _LostRace):
            session.rollback()
    raise RotationRefused("rotation kept colliding with other workers; try again")


class _LostRace(Exception):
    pass


def _rotate_once(
    session: Session,
    kek: bytes,
    alg: str,
    now: datetime,
    min_standby_age: timedelta,
    force: bool,
    due_after: timedelta | None,
) -> RotationResult:
    active = _by_state(session, "active")
    if active is None:
        raise RotationRefused("no active key: run `flask keys ensure`")
    if due_after is not None and now - (active.activated_at or active.created_at) < due_after:
        session.rollback()
        return RotationResult(False, active.kid, None, None, "not due")
    standby = _by_state(session, "standby")
    if standby is None:
        standby = _new_row(kek, alg, "standby", now)
        session.add(standby)
        session.flush()
        if not force:  # keep the new standby, so that it can be promoted once published
            session.commit()
    if not force and now - standby.created_at < min_standby_age:
        session.rollback()
        raise RotationRefused(
            f"standby key {standby.kid} is younger than the JWKS cache lifetime; "
            "verifiers may not know it yet (use --force to rotate anyway)"
        )
    _transition(session, active.kid, "active", state="retired", retired_at=now)
    _transition(session, standby.kid, "standby", state="active", activated_at=now)
    new_standby = _new_row(kek, alg, "standby", now)
    session.add(new_standby)
    session.commit()
    log.info("rotated signing keys: %s active, %s retired", standby.kid, active.kid)
    return RotationResult(True, standby.kid, active.kid, new_standby.kid, "rotated")


def _transition(session: Session, kid: str, from_state: str, **values: Any) -> None:
    """Change one key's state only if it is still ``from_state``; else another worker won."""
    result = session.execute(
        update(SigningKey)
        .where(SigningKey.kid == kid, SigningKey.state == from_state)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _LostRace()


def revoke_key(session: Session, kek: bytes, alg: str, kid: str, now: datetime) -> SigningKey:
    """Emergency: unpublish ``kid`` and refuse every token it signed.

    Revoking the active key promotes the standby at once (no JWKS grace: the
    old key is compromised), and a new standby is made.
    """
    row = session.get(SigningKey, kid)
    if row is None or row.state in ("revoked", "expired"):
        raise UnknownKey(f"no live key {kid}")
    was_active = row.state == "active"
    row.state, row.revoked_at = "revoked", now
    session.flush()
    if was_active:
        standby = _by_state(session, "standby")
        if standby is not None:
            standby.state, standby.activated_at = "active", now
            session.flush()
    session.commit()
    ensure_keys(session, kek, alg, now)
    log.warning("revoked signing key %s", kid)
    return row


def expire_retired(session: Session, now: datetime, lifetime: timedelta) -> int:
    """Mark retired keys whose last token has expired (retired_at + lifetime) as expired."""
    result = session.execute(
        update(SigningKey)
        .where(SigningKey.state == "retired", SigningKey.retired_at <= now - lifetime)
        .values(state="expired", expired_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
