"""Key-encryption key rotation (SPEC §4): what the configured keys open, and re-sealing.

Two kinds of sealed values exist: signing keys' private keys (purpose
``signing-key:<kid>``) and TOTP secrets (``totp:<user id>``). Re-sealing
opens each with whichever configured key sealed it and seals it again under
the first; a conditional UPDATE (WHERE the blob is still the one read) lets a
concurrent enrolment or rotation win, so nothing written meanwhile is lost.
Re-sealing twice does nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Update, select, update
from sqlalchemy.orm import Session

from ..models import SigningKey, TotpCredential
from .crypto import Kek, SealError, key_id, seal, sealed_key_id, unseal
from .dml import rowcount

__all__ = ["KekReport", "check_keks", "reseal_all"]


@dataclass
class KekReport:
    """Per kind of sealed value (``signing_keys``, ``totp_secrets``): how many were
    re-sealed, already sealed under the first key, and could not be opened (by name)."""

    resealed: dict[str, int] = field(default_factory=lambda: {"signing_keys": 0,
                                                              "totp_secrets": 0})
    current: dict[str, int] = field(default_factory=lambda: {"signing_keys": 0,
                                                             "totp_secrets": 0})
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Sealed:
    kind: str
    name: str  # what the operator reads: "signing key <kid>", "TOTP secret of user <id>"
    purpose: str
    blob: bytes
    write: Callable[[bytes, bytes], Update]  # (old blob, new blob) -> conditional UPDATE


def _update_key(kid: str, old: bytes, new: bytes) -> Update:
    return (update(SigningKey)
            .where(SigningKey.kid == kid, SigningKey.private_key_encrypted == old)
            .values(private_key_encrypted=new))


def _update_totp(user_id: int, old: bytes, new: bytes) -> Update:
    return (update(TotpCredential)
            .where(TotpCredential.user_id == user_id, TotpCredential.secret_encrypted == old)
            .values(secret_encrypted=new))


def _sealed_values(session: Session) -> Iterator[_Sealed]:
    keys = select(SigningKey.kid, SigningKey.private_key_encrypted).order_by(SigningKey.kid)
    for kid, blob in session.execute(keys):
        yield _Sealed("signing_keys", f"signing key {kid}", f"signing-key:{kid}", blob,
                      partial(_update_key, kid))
    secrets = select(TotpCredential.user_id, TotpCredential.secret_encrypted).order_by(
        TotpCredential.user_id)
    for user_id, blob in session.execute(secrets):
        yield _Sealed("totp_secrets", f"TOTP secret of user {user_id}", f"totp:{user_id}", blob,
                      partial(_update_totp, user_id))


def _opens(kek: bytes, value: _Sealed) -> bool:
    """Whether a configured key opens ``value``: by its id when it names one (no
    decryption), else (a value from before ids) by trying."""
    named = sealed_key_id(value.blob)
    keys = kek.keys if isinstance(kek, Kek) else (bytes(kek),)
    if named is not None:
        return named in {key_id(k) for k in keys}
    try:
        unseal(kek, value.blob, value.purpose)
    except SealError:
        return False
    return True


def check_keks(session: Session, kek: bytes, *, live_only: bool = True) -> list[str]:
    """Names of sealed values that no configured key opens (empty: the list is right).

    ``live_only`` skips revoked and expired signing keys, which are never opened again.
    """
    dead = set(session.scalars(select(SigningKey.kid).where(
        SigningKey.state.in_(("revoked", "expired"))))) if live_only else set()
    return [v.name for v in _sealed_values(session)
            if not (v.kind == "signing_keys" and v.purpose.split(":", 1)[1] in dead)
            and not _opens(kek, v)]


def reseal_all(session: Session, kek: bytes) -> KekReport:
    """Seal every private key and TOTP secret under the first configured key; commit."""
    report = KekReport()
    first = key_id(kek)
    for value in list(_sealed_values(session)):
        if sealed_key_id(value.blob) == first:
            report.current[value.kind] += 1
            continue
        try:
            plaintext = unseal(kek, value.blob, value.purpose)
        except SealError:
            report.unreadable.append(value.name)
            continue
        result = session.execute(value.write(value.blob, seal(kek, plaintext, value.purpose))
                                 .execution_options(synchronize_session=False))
        if rowcount(result) == 1:
            report.resealed[value.kind] += 1
        else:  # changed meanwhile (a new enrolment, a rotation): written under the first key
            report.current[value.kind] += 1
    session.commit()
    return report
