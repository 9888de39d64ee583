"""TOTP second factor and recovery codes (SPEC §7).

TOTP is RFC 6238 through pyotp: SHA-1, 6 digits, 30 s steps, one step of
drift either way. Secrets are 160-bit, sealed under the key-encryption key
with the purpose ``totp:<user_id>``. A time step once accepted for a user is
refused again, and so is any earlier one: a conditional UPDATE on the highest
accepted step lets the database settle races between processes. Recovery
codes carry 80 bits, are stored only as SHA-256 of their normalised form and
are spent by a conditional UPDATE as well.

Every function that writes commits its own work and rolls back on failure. The
RFC 6238 arithmetic and the enrolment QR code are in ``app.core.totp``.
Nothing here logs a secret or a code. Errors::

    MfaError (ValueError)
    ├── InvalidCode           the confirmation code is wrong or already used
    ├── MfaAlreadyEnabled     enrolment started while MFA is on
    ├── MfaNotEnabled         recovery codes asked for while MFA is off
    └── NoPendingEnrollment   confirmation without a pending enrolment
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import RecoveryCode, TotpCredential
from .crypto import seal, sha256_hex, unseal
from .dml import rowcount
from .errors import CoreError
from .totp import DIGEST, DIGITS, DRIFT_STEPS, PERIOD, Enrollment, enrollment, matching_step, qr_svg

__all__ = [
    "DIGEST", "DIGITS", "DRIFT_STEPS", "PERIOD", "RECOVERY_CODES", "Enrollment", "InvalidCode",
    "MfaAlreadyEnabled", "MfaError", "MfaNotEnabled", "NoPendingEnrollment", "begin_enrollment",
    "enabled_among", "confirm_enrollment", "disable", "is_enabled", "pending_enrollment",
    "qr_svg", "regenerate_recovery_codes", "remaining_recovery_codes", "use_recovery_code",
    "verify_second_factor", "verify_totp",
]

RECOVERY_CODES = 10
_RECOVERY_LENGTH = 16  # base32 characters: 80 bits
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


class MfaError(CoreError, ValueError):
    """An MFA operation cannot be done as asked."""

    code = "mfa_error"


class InvalidCode(MfaError):
    """The code is wrong, malformed or was already used."""

    code = "invalid_code"


class MfaAlreadyEnabled(MfaError):
    """The user already has a confirmed TOTP credential."""

    code = "mfa_already_enabled"


class MfaNotEnabled(MfaError):
    """The user has no confirmed TOTP credential."""

    code = "mfa_not_enabled"


class NoPendingEnrollment(MfaError):
    """There is no pending (unconfirmed) enrolment to confirm."""

    code = "no_pending_enrollment"


@contextmanager
def _transaction(session: Session) -> Iterator[None]:
    """Commit what the block wrote, or roll all of it back and re-raise."""
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _purpose(user_id: int) -> str:
    return f"totp:{user_id}"


def _credential(session: Session, user_id: int) -> TotpCredential | None:
    return session.get(TotpCredential, user_id)


def is_enabled(session: Session, user_id: int) -> bool:
    """Whether the user has a confirmed TOTP credential."""
    credential = _credential(session, user_id)
    return credential is not None and credential.confirmed_at is not None


def enabled_among(session: Session, user_ids: list[int]) -> set[int]:
    """Which of ``user_ids`` have MFA on, in one query (a page of users)."""
    if not user_ids:
        return set()
    stmt = select(TotpCredential.user_id).where(TotpCredential.user_id.in_(user_ids),
                                                TotpCredential.confirmed_at.is_not(None))
    return set(session.scalars(stmt))


def begin_enrollment(session: Session, kek: bytes, user_id: int, username: str,
                     issuer_name: str, now: datetime) -> Enrollment:
    """Store a new pending secret, replacing a pending one; raise MfaAlreadyEnabled if on."""
    if is_enabled(session, user_id):
        raise MfaAlreadyEnabled("MFA is already enabled")
    secret = pyotp.random_base32(32)  # 32 base32 characters: 160 bits (RFC 4226 §4 R6)
    _store_pending(session, user_id, seal(kek, secret.encode(), _purpose(user_id)), now)
    return enrollment(secret, username, issuer_name)


def pending_enrollment(session: Session, kek: bytes, user_id: int, username: str,
                       issuer_name: str) -> Enrollment | None:
    """The pending (unconfirmed) enrolment again, to show after a wrong code; else None."""
    credential = _credential(session, user_id)
    if credential is None or credential.confirmed_at is not None:
        return None
    secret = unseal(kek, credential.secret_encrypted, _purpose(user_id)).decode()
    return enrollment(secret, username, issuer_name)


def _replace_pending(session: Session, user_id: int, sealed: bytes, now: datetime) -> bool:
    # Conditional, so a credential confirmed meanwhile is never overwritten.
    result = session.execute(
        update(TotpCredential)
        .where(TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_(None))
        .values(secret_encrypted=sealed, created_at=now, last_used_step=0)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def _store_pending(session: Session, user_id: int, sealed: bytes, now: datetime) -> None:
    """Replace the pending credential or insert one; the primary key settles a race."""
    with _transaction(session):
        if _replace_pending(session, user_id, sealed, now):
            return
        session.add(TotpCredential(user_id=user_id, secret_encrypted=sealed, created_at=now,
                                   confirmed_at=None, last_used_step=0))
        try:
            session.flush()
        except IntegrityError:
            session.rollback()  # a concurrent enrolment inserted first, or no such user
            if _replace_pending(session, user_id, sealed, now):
                return
            if _credential(session, user_id) is None:
                raise
            raise MfaAlreadyEnabled("MFA is already enabled") from None


def _accept_step(session: Session, user_id: int, sealed: bytes, step: int) -> bool:
    """Record ``step`` as used unless it or a later one already was (replay protection).

    The WHERE clause is the whole check, so two processes racing on one code
    cannot both win; ``sealed`` pins the secret the code was checked against.
    """
    with _transaction(session):
        result = session.execute(
            update(TotpCredential)
            .where(TotpCredential.user_id == user_id,
                   TotpCredential.secret_encrypted == sealed,
                   TotpCredential.last_used_step < step)
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        )
    return rowcount(result) == 1


def _check_code(session: Session, kek: bytes, credential: TotpCredential, code: str,
                now: datetime) -> bool:
    """Whether ``code`` is valid for the credential now, spending its step if so."""
    user_id, sealed = credential.user_id, credential.secret_encrypted
    secret = unseal(kek, sealed, _purpose(user_id)).decode()
    step = matching_step(secret, code, now)
    return step is not None and _accept_step(session, user_id, sealed, step)


def confirm_enrollment(session: Session, kek: bytes, user_id: int, code: str,
                       now: datetime) -> list[str]:
    """Switch MFA on with a valid code; return 10 new recovery codes in clear (shown once)."""
    credential = _credential(session, user_id)
    if credential is None or credential.confirmed_at is not None:
        raise NoPendingEnrollment("no pending enrolment")
    sealed = credential.secret_encrypted
    if not _check_code(session, kek, credential, code, now):
        raise InvalidCode("invalid code")
    with _transaction(session):
        # Only the secret whose code was just checked is switched on, with its codes at once.
        result = session.execute(
            update(TotpCredential)
            .where(TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_(None),
                   TotpCredential.secret_encrypted == sealed)
            .values(confirmed_at=now)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) != 1:
            raise NoPendingEnrollment("the enrolment changed meanwhile")
        return _replace_recovery_codes(session, user_id)


def verify_totp(session: Session, kek: bytes, user_id: int, code: str, now: datetime) -> bool:
    """Whether ``code`` (exactly 6 ASCII digits) is valid and unused for a confirmed credential."""
    credential = _credential(session, user_id)
    if credential is None or credential.confirmed_at is None:
        return False
    return _check_code(session, kek, credential, code, now)


def _normalize(code: str) -> str:
    """How users type recovery codes: any case, with or without dashes and spaces."""
    return code.strip().lower().replace("-", "").replace(" ", "")


def use_recovery_code(session: Session, user_id: int, code: str, now: datetime) -> bool:
    """Spend one recovery code; each works once, whoever races for it."""
    with _transaction(session):
        result = session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user_id,
                   RecoveryCode.code_hash == sha256_hex(_normalize(code)),
                   RecoveryCode.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
    return rowcount(result) == 1


def verify_second_factor(session: Session, kek: bytes, user_id: int, code: str,
                         now: datetime) -> str | None:
    """``"totp"`` or ``"recovery"`` for an accepted code, else None (MFA off included)."""
    if not is_enabled(session, user_id):
        return None
    if verify_totp(session, kek, user_id, code, now):
        return "totp"
    if len(_normalize(code)) == _RECOVERY_LENGTH and use_recovery_code(session, user_id, code, now):
        return "recovery"
    return None


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, _RECOVERY_LENGTH, 4))


def _replace_recovery_codes(session: Session, user_id: int) -> list[str]:
    """Swap the user's codes for new ones inside the caller's transaction."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(RecoveryCode(user_id=user_id, code_hash=sha256_hex(_normalize(code)))
                    for code in codes)
    return codes


def regenerate_recovery_codes(session: Session, user_id: int, now: datetime) -> list[str]:
    """Replace every recovery code with 10 new ones, returned in clear once.

    Raises MfaNotEnabled without a confirmed credential. ``now`` is accepted
    for symmetry with the other writers; the codes carry no timestamp.
    """
    if not is_enabled(session, user_id):
        raise MfaNotEnabled("MFA is not enabled")
    with _transaction(session):
        return _replace_recovery_codes(session, user_id)


def remaining_recovery_codes(session: Session, user_id: int) -> int:
    """How many of the user's recovery codes are unused."""
    stmt = select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    return int(session.scalar(stmt) or 0)


def disable(session: Session, user_id: int) -> None:
    """Turn MFA off: the credential (pending or confirmed) and every recovery code go.

    Idempotent: disabling a user without MFA does nothing.
    """
    with _transaction(session):
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
