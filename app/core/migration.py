"""The HS256 → asymmetric migration: phase and legacy usage (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..config import MIGRATION_PHASES
from ..models import LegacyUsage, ServiceState
from .dml import rowcount

__all__ = [
    "PHASE_KEY",
    "LegacyUsageDay",
    "SigningStatus",
    "accepts_hs256",
    "effective_phase",
    "legacy_usage",
    "signing_status",
    "signs_hs256",
    "record_legacy_use",
    "set_phase",
    "stored_phase",
]

PHASE_KEY = "migration_phase"


@dataclass(frozen=True)
class LegacyUsageDay:
    day: date
    count: int
    last_seen_at: datetime


def stored_phase(session: Session) -> str | None:
    """The phase set through the CLI or admin API, if any."""
    row = session.get(ServiceState, PHASE_KEY)
    return row.value if row is not None else None


def effective_phase(stored: str | None, configured: str | None, has_legacy_secrets: bool) -> str:
    """Stored phase, else the MIGRATION_PHASE setting, else by whether legacy secrets exist."""
    phase = stored or configured or ("dual" if has_legacy_secrets else "asymmetric")
    if phase in ("legacy", "dual") and not has_legacy_secrets:
        return "asymmetric"  # nothing to accept or sign HS256 with
    return phase


def signs_hs256(phase: str, legacy_accept_until: datetime | None, now: datetime) -> bool:
    """Whether new tokens are signed with the first legacy secret at ``now``.

    Only in phase ``legacy`` and only before LEGACY_ACCEPT_UNTIL: past it HS256 is
    refused on every request, so a token signed HS256 then would lock its user out;
    the active asymmetric key signs instead (and the status says so).
    """
    return phase == "legacy" and (legacy_accept_until is None or now < legacy_accept_until)


def accepts_hs256(phase: str, legacy_accept_until: datetime | None, now: datetime) -> bool:
    """Whether HS256 tokens are accepted at ``now``: a legacy phase, before the sunset."""
    return phase in ("legacy", "dual") and (
        legacy_accept_until is None or now < legacy_accept_until)


@dataclass(frozen=True)
class SigningStatus:
    """What signs new tokens and whether HS256 is accepted, as the operator is shown it."""

    signing_alg: str | None  # HS256, ES256/RS256, or None when no key can sign
    legacy_accepted: bool
    note: str | None  # set when the phase alone would mislead (legacy past the sunset)


def signing_status(phase: str, legacy_accept_until: datetime | None, now: datetime,
                   asymmetric_alg: str | None) -> SigningStatus:
    """The migration's effect at ``now`` (``flask migration status``, the admin API and page)."""
    sunset = legacy_accept_until is not None and now >= legacy_accept_until
    accepted = accepts_hs256(phase, legacy_accept_until, now)
    alg = "HS256" if signs_hs256(phase, legacy_accept_until, now) else asymmetric_alg
    note = None
    if phase in ("legacy", "dual") and sunset:
        note = (f"phase {phase} is past LEGACY_ACCEPT_UNTIL: HS256 tokens are refused and "
                f"new tokens are signed with the active asymmetric key ({asymmetric_alg}).")
    return SigningStatus(alg, accepted, note)


def set_phase(session: Session, phase: str, now: datetime) -> str | None:
    """Store ``phase`` for every worker; return the previous stored phase."""
    if phase not in MIGRATION_PHASES:
        raise ValueError(f"phase must be one of {', '.join(MIGRATION_PHASES)}")
    row = session.get(ServiceState, PHASE_KEY)
    previous = row.value if row is not None else None
    if row is None:
        session.add(ServiceState(name=PHASE_KEY, value=phase, updated_at=now))
    else:
        row.value, row.updated_at = phase, now
    session.commit()
    return previous


def record_legacy_use(session: Session, now: datetime) -> None:
    """Count one accepted legacy token for today (UTC) and remember when."""
    day = now.date()
    bumped = session.execute(
        update(LegacyUsage)
        .where(LegacyUsage.day == day)
        .values(count=LegacyUsage.count + 1, last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(bumped) == 0:
        session.add(LegacyUsage(day=day, count=1, last_seen_at=now))
        try:
            session.commit()
            return
        except IntegrityError:  # another worker made today's row first
            session.rollback()
            record_legacy_use(session, now)
            return
    session.commit()


def legacy_usage(session: Session, days: int = 30) -> list[LegacyUsageDay]:
    """Legacy tokens accepted per day, newest first."""
    rows = session.scalars(select(LegacyUsage).order_by(LegacyUsage.day.desc()).limit(days))
    return [LegacyUsageDay(r.day, r.count, r.last_seen_at) for r in rows]
