"""The ids the service stores, and reading one from a token's ``sub``.

Integer primary keys are 32-bit on PostgreSQL: ids from URLs, query strings and
token subjects are bounded by this, so that an out-of-range id is a 404, a 400
or a refused token, never a database error.
"""

from __future__ import annotations

__all__ = ["MAX_INTEGER_ID", "user_id_from_subject"]

MAX_INTEGER_ID = 2**31 - 1
_MAX_DIGITS = len(str(MAX_INTEGER_ID))


def user_id_from_subject(subject: object, *, leading_zeros: bool = False) -> int | None:
    """The user id ``subject`` names, or None unless it is one as we write it.

    That is ASCII decimal digits, 1..MAX_INTEGER_ID, without a leading zero
    unless ``leading_zeros`` (the old system may have padded its ids):
    ``str.isdigit`` alone also admits "²" (which ``int`` refuses) and "１"
    (which ``int`` reads as 1).
    """
    if not isinstance(subject, str) or not subject.isascii() or not subject.isdigit():
        return None
    if leading_zeros:
        subject = subject.lstrip("0")
    if not 0 < len(subject) <= _MAX_DIGITS or subject[0] == "0":
        return None
    user_id = int(subject)
    return user_id if user_id <= MAX_INTEGER_ID else None
