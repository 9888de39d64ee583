"""Typed models, one module per aggregate; imported here so Alembic sees them all."""

from .audit import AuditEvent, ServiceClient
from .keys import KEY_STATES, LegacyUsage, ServiceState, SigningKey
from .mfa import RecoveryCode, TotpCredential
from .sessions import AuthSession, RefreshToken, Revocation
from .user import Note, User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "KEY_STATES",
    "LegacyUsage",
    "Note",
    "RecoveryCode",
    "RefreshToken",
    "Revocation",
    "ServiceClient",
    "ServiceState",
    "SigningKey",
    "TotpCredential",
    "User",
]
