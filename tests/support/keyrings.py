"""Keyring snapshots built without an app: key rows as plain objects, keys from joserfc.

For the Flask-free unit tests of app/core (tokens, keyring): ``build_snapshot``
reads rows through their attributes only, as it reads the database's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.keyring import KeyringSnapshot, build_snapshot
from app.core.keys import generate_key
from app.core.tokens import TokenPolicy

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ISSUER = "https://tessera.example"
AUDIENCE = ISSUER + "/api"
LEGACY_SECRET = "old-shared-secret-0123456789-abcdef"


@dataclass
class KeyRow:
    """What build_snapshot reads of a signing-key row."""

    kid: str
    alg: str
    state: str
    public_jwk: str
    private: Any
    retired_at: datetime | None = None


def key_row(kid: str, state: str = "active", alg: str = "ES256",
            retired_at: datetime | None = None) -> KeyRow:
    """A row with a fresh key pair."""
    private = generate_key(alg)
    public = {**private.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    return KeyRow(kid, alg, state, json.dumps(public), private, retired_at)


def snapshot_of(rows: list[KeyRow], *, legacy: tuple[str, ...] = (), phase: str = "asymmetric",
                now: datetime = NOW) -> KeyringSnapshot:
    """The snapshot the keyring would load from these rows and legacy secrets."""
    return build_snapshot(rows, legacy, phase, lambda row: row.private, now=now,
                          retired_lifetime=timedelta(minutes=15, seconds=30))


def policy(**changes: Any) -> TokenPolicy:
    """The default token policy of an app at ISSUER."""
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "leeway": 30,
                              "max_bytes": 8192, **changes}
    return TokenPolicy(**values)


def claims(user_id: int = 7, now: datetime = NOW, **changes: Any) -> dict[str, Any]:
    """A valid access token's claims issued at ``now``."""
    issued = int(now.timestamp())
    values: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": str(user_id), "exp": issued + 900,
        "nbf": issued, "iat": issued, "jti": f"jti-{user_id}-{issued}", "client_id": "web",
        "sid": "sid-1", "scope": "notes:read notes:write", "roles": ["user"],
        "auth_time": issued, "amr": ["pwd"], "acr": "aal1",
    }
    values.update(changes)
    return values
