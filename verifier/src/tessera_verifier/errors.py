"""The one error of verification, with a machine reason code per failure (SPEC §3).

The code is for logs and metrics, never for the client: a client is told only
``invalid_token``. The codes, by step of SPEC §3:

- step 1: ``too_large``, ``malformed``
- step 2: ``alg_none``, ``alg_not_allowed``, ``alg_mismatch``, ``legacy_disabled``
- step 3: ``crit_unsupported``
- step 4: ``missing_kid``, ``bad_kid``, ``unknown_kid``, ``key_revoked``, ``key_expired``
- step 5: ``bad_signature``, ``bad_typ``, ``missing_claim``, ``bad_claim_type``,
  ``bad_issuer``, ``bad_audience``, ``expired``, ``not_yet_valid``,
  ``issued_in_future``, ``lifetime_too_long`` (a legacy token living too long)
"""

from __future__ import annotations

__all__ = ["REASONS", "TokenRejected"]

REASONS = frozenset({
    "too_large", "malformed", "alg_none", "alg_not_allowed", "alg_mismatch",
    "legacy_disabled", "crit_unsupported", "missing_kid", "bad_kid", "unknown_kid",
    "key_revoked", "key_expired", "bad_signature", "bad_typ", "missing_claim",
    "bad_claim_type", "bad_issuer", "bad_audience", "expired", "not_yet_valid",
    "issued_in_future", "lifetime_too_long",
})


class TokenRejected(Exception):
    """Verification failed; ``reason`` is the internal code for logs and metrics.

    Callers may raise it with codes of their own (Tessera adds the revocation
    and user checks of its step 6), so ``reason`` is any short string.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def code(self) -> str:
        """The reason code (joserfc's name for it)."""
        return self.reason
