"""TOTP second factor and recovery codes (SPEC §7).

TOTP is RFC 6238 through pyotp: SHA-1, 6 digits, 30 s steps, one step of
drift either way. Secrets are sealed under the key-encryption key. A time
step once accepted for a user is refused again: a conditional UPDATE on the
highest accepted step lets the database settle races between processes.
Recovery codes carry 80 bits, are stored as SHA-256 and are spent by a
conditional UPDATE as well.
"""

from __future__ import annotations

import hmac
import io
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.core.crypto import seal, sha256_hex, unseal
from app.models import RecoveryCode, TotpCredential

__all__ = [
    "Enrollment",
    "InvalidCode",
    "MfaAlreadyEnabled",
    "MfaError",
    "MfaNotEnabled",
    "NoPendingEnrollment",
    "begin_enrollment",
    "confirm_enrollment",
    "disable",
    "is_enabled",
    "regenerate_recovery_codes",
    "remaining_recovery_codes",
    "use_recovery_code",
    "verify_second_factor",
    "verify_totp",
]

DIGITS = 6
PERIOD = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, 5 bits a character


class MfaError(ValueError):
    """An MFA operation cannot be done as asked."""


class InvalidCode(MfaError):
    pass


class MfaAlreadyEnabled(MfaError):
    pass


class MfaNotEnabled(MfaError):
    pass


class NoPendingEnrollment(MfaError):
    pass


@dataclass(frozen=True)
class Enrollment:
    secret: str
    uri: str
    qr_svg: str


def _purpose(user_id: int) -> str:
    return f"totp:{user_id}"


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)  # SHA-1 by default (RFC 6238)


def _credential(session: Session, user_id: int) -> TotpCredential | None:
    return session.get(TotpCredential, user_id)


def is_enabled(session: Session, user_id: int) -> bool:
    """Whether the user has a confirmed TOTP credential."""
    credential = _credential(session, user_id)
    return credential is not None and credential.confirmed_at is not None


def begin_enrollment(session: Session, kek: bytes, user_id: int, username: str,
                     issuer_name: str, now: datetime) -> Enrollment:
    """Store a new pending secret (replacing a pending one) and return it with its URI and QR."""
    credential = _credential(session, user_id)
    if credential is not None and credential.confirmed_at is not None:
        raise MfaAlreadyEnabled("MFA is already enabled")
    secret = pyotp.random_base32(32)  # 160 bits
    sealed = seal(kek, secret.encode(), _purpose(user_id))
    if credential is None:
        session.add(TotpCredential(user_id=user_id, secret_encrypted=sealed, created_at=now,
                                   last_used_step=0))
    else:
        credential.secret_encrypted, credential.created_at = sealed, now
        credential.last_used_step = 0
    session.commit()
    uri = _totp(secret).provisioning_uri(name=username, issuer_name=issuer_name)
    return Enrollment(secret, uri, qr_svg(uri))


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code, embeddable in a page (no XML declaration)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, svgns=True)
    return buffer.getvalue().decode()


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within the drift window whose code is ``code``, if any."""
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = _totp(secret)
    current = int(now.timestamp()) // PERIOD
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * PERIOD), code):
            return step
    return None


def _accept_step(session: Session, user_id: int, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) already was: replay protection."""
    result = session.execute(
        update(TotpCredential)
        .where(TotpCredential.user_id == user_id, TotpCredential.last_used_step < step)
        .values(last_used_step=step)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _check_code(session: Session, kek: bytes, credential: TotpCredential, code: str,
                now: datetime) -> bool:
    secret = unseal(kek, credential.secret_encrypted, _purpose(credential.user_id)).decode()
    step = _matching_step(secret, code.strip(), now)
    return step is not None and _accept_step(session, credential.user_id, step)


def confirm_enrollment(session: Session, kek: bytes, user_id: int, code: str,
                       now: datetime) -> list[str]:
    """Switch MFA on with a valid code; return 10 new recovery codes (shown once)."""
    credential = _credential(session, user_id)
    if credential is None or credential.confirmed_at is not None:
        raise NoPendingEnrollment("no pending enrollment")
    if not _check_code(session, kek, credential, code, now):
        raise InvalidCode("invalid code")
    credential.confirmed_at = now
    return regenerate_recovery_codes(session, user_id, now)


def verify_totp(session: Session, kek: bytes, user_id: int, code: str, now: datetime) -> bool:
    """A valid, never-used TOTP code of a confirmed credential."""
    credential = _credential(session, user_id)
    if credential is None or credential.confirmed_at is None:
        return False
    return _check_code(session, kek, credential, code, now)


def _normalize(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def use_recovery_code(session: Session, user_id: int, code: str, now: datetime) -> bool:
    """Spend one recovery code; each works once, whoever races for it."""
    result = session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == sha256_hex(_normalize(code)),
               RecoveryCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def verify_second_factor(session: Session, kek: bytes, user_id: int, code: str,
                         now: datetime) -> str | None:
    """``"totp"`` or ``"recovery"`` for an accepted code, else None."""
    if not is_enabled(session, user_id):
        return None
    if verify_totp(session, kek, user_id, code, now):
        return "totp"
    if len(_normalize(code)) == 16 and use_recovery_code(session, user_id, code, now):
        return "recovery"
    return None


def _new_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))  # 80 bits
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def regenerate_recovery_codes(session: Session, user_id: int, now: datetime) -> list[str]:
    """Replace every recovery code with 10 new ones; returns them in clear, once."""
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(RecoveryCode(user_id=user_id, code_hash=sha256_hex(_normalize(c)))
                    for c in codes)
    session.commit()
    return codes


def remaining_recovery_codes(session: Session, user_id: int) -> int:
    """Unused recovery codes of the user."""
    stmt = select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    return int(session.scalar(stmt) or 0)


def disable(session: Session, user_id: int) -> None:
    """Turn MFA off: the credential and every recovery code go."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
    session.commit()
