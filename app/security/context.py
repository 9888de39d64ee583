"""The per-app security objects: the keyring, the token policy and the verified-token cache.

``init_app`` builds them once from the settings; the accessors read them from
``current_app.extensions``. The keyring's loader reads keys and phase from the
database in a session of its own and parses them into a snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .. import state
from ..config import Settings
from ..core import keys as key_service
from ..core.crypto import SealError
from ..core.keyring import Keyring, KeyringSnapshot, KeyringUnavailable, build_snapshot
from ..core.migration import effective_phase, stored_phase
from ..core.token_cache import VerifiedTokenCache
from ..core.tokens import TokenPolicy
from ..extensions import db
from .principals import TokenEntry

__all__ = ["SecurityState", "init_app", "keyring", "security", "snapshot", "token_policy"]

log = logging.getLogger(__name__)
_EXT = "tessera.security"


@dataclass
class SecurityState:
    """One app's keyring, token policy and cache of verified tokens."""

    keyring: Keyring
    policy: TokenPolicy
    cache: VerifiedTokenCache[TokenEntry]


def policy_from(s: Settings) -> TokenPolicy:
    """The strict verifier's policy from the settings (times as epoch seconds)."""
    until = s.legacy_accept_until
    return TokenPolicy(
        issuer=s.issuer,
        audience=s.access_audience,
        leeway=s.clock_skew_leeway.total_seconds(),
        max_bytes=s.token_max_bytes,
        legacy_accept_until=until.timestamp() if until is not None else None,
        legacy_max_lifetime=s.legacy_max_lifetime.total_seconds(),
        legacy_subject_claim=s.legacy_subject_claim,
        legacy_issuer=s.legacy_issuer,
        legacy_audience=s.legacy_audience,
    )


def init_app(app: Flask) -> None:
    """Create this app's keyring, token policy and verified-token cache."""
    if _EXT in app.extensions:
        raise RuntimeError("security is already initialised on this app")
    s = app.extensions["tessera.settings"]
    ring = Keyring(
        _load_snapshot,
        refresh_seconds=s.keyring_refresh.total_seconds(),
        cooldown_seconds=s.keyring_reload_cooldown.total_seconds(),
    )
    app.extensions[_EXT] = SecurityState(ring, policy_from(s), VerifiedTokenCache())


def security() -> SecurityState:
    """The current app's security objects."""
    found: SecurityState = current_app.extensions[_EXT]
    return found


def keyring() -> Keyring:
    """The current app's keyring."""
    return security().keyring


def snapshot() -> KeyringSnapshot:
    """The current keyring snapshot (reloaded if stale)."""
    return security().keyring.current()


def token_policy() -> TokenPolicy:
    """The current app's token policy."""
    return security().policy


def _load_snapshot() -> KeyringSnapshot:
    """Read keys and phase from the database and parse them (once per load).

    In a session of its own: a reload can come in the middle of a request (a login
    signing its first token), whose pending rows must be neither committed nor
    rolled back by the keyring ending its read.
    """
    s = state.settings()
    kek = s.key_encryption_key
    assert kek is not None
    try:
        with Session(db.engine) as session:  # closing ends the read; rows keep their values
            rows = key_service.list_keys(session)
            phase = effective_phase(
                stored_phase(session), s.migration_phase, bool(s.legacy_hs256_secrets)
            )
    except SQLAlchemyError as exc:
        raise KeyringUnavailable(str(exc.__class__.__name__)) from None
    try:
        return build_snapshot(
            rows,
            s.legacy_hs256_secrets,
            phase,
            lambda row: key_service.load_private_key(row, kek),
            now=state.now(),
            retired_lifetime=s.access_token_ttl + s.clock_skew_leeway,
        )
    except SealError:
        log.critical("KEY_ENCRYPTION_KEY cannot open the active signing key: wrong key?")
        raise
