"""The ids the service stores, and reading one from a token's ``sub``.

Integer primary keys are 32-bit on PostgreSQL: ids from URLs, query strings and
token subjects are bounded by this, so that an out-of-range id is a 404, a 400
or a refused token, never a database error. The rule for a subject is the
strict verifier's (every access token's ``sub`` must pass it), so it lives there.
"""

from __future__ import annotations

from tessera_verifier.claims import MAX_INTEGER_ID, user_id_from_subject

__all__ = ["MAX_INTEGER_ID", "user_id_from_subject"]
