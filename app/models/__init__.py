"""Typed models, one module per aggregate; imported here so Alembic sees them all."""

from app.models.audit import AuditEvent, ServiceClient
from app.models.keys import KEY_STATES, LegacyUsage, ServiceState, SigningKey
from app.models.mfa import RecoveryCode, TotpCredential
from app.models.sessions import AuthSession, RefreshToken, Revocation, RevocationTrust
from app.models.user import Note, User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "KEY_STATES",
    "LegacyUsage",
    "Note",
    "RecoveryCode",
    "RefreshToken",
    "Revocation",
    "RevocationTrust",
    "ServiceClient",
    "ServiceState",
    "SigningKey",
    "TotpCredential",
    "User",
]
