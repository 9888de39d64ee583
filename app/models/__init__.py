"""Typed models, one module per aggregate; imported here so Alembic sees them all."""

from .audit import AuditEvent, ServiceClient
from .events import SecurityEvent, SecurityEventAck, SecurityEventCursor
from .keys import KEY_STATES, LegacyUsage, ServiceState, SigningKey
from .mfa import RecoveryCode, TotpCredential
from .passkey import Passkey, WebauthnChallenge
from .ratelimit import RateLimitCounter
from .sessions import AuthSession, RefreshToken, Revocation, RevocationTrust
from .user import Note, User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "KEY_STATES",
    "LegacyUsage",
    "Note",
    "Passkey",
    "RateLimitCounter",
    "RecoveryCode",
    "RefreshToken",
    "Revocation",
    "RevocationTrust",
    "SecurityEvent",
    "SecurityEventAck",
    "SecurityEventCursor",
    "ServiceClient",
    "ServiceState",
    "SigningKey",
    "TotpCredential",
    "User",
    "WebauthnChallenge",
]
