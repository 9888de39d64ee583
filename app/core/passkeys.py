"""Passkey (WebAuthn) ceremonies, Flask-free (issue 22).

py_webauthn checks each browser answer (origin, RP id hash, challenge, flags,
signature, sign counter); this module owns what the library leaves to the
relying party: the challenges, stored server-side as SHA-256 with their
purpose, user, binding (a session id or an mfa_token's jti) and expiry, and
spent by one conditional DELETE, so each works once, for the ceremony it was
made for, whoever races for it; and the credentials, whose sign counter is
moved by a conditional UPDATE, so two answers carrying one count cannot both
pass. Errors::

    PasskeyError (CoreError, ValueError)  passkey_error
    ├── PasskeyRejected   passkey_rejected  an answer refused; ``reason`` is a machine code
    └── NoPasskeys        no_passkeys       an authentication asked for without passkeys
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import webauthn
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..models import Passkey, WebauthnChallenge
from .crypto import sha256_hex
from .errors import CoreError
from .passkey_store import list_passkeys, rowcount

__all__ = [
    "NoPasskeys",
    "PasskeyError",
    "PasskeyRejected",
    "RelyingParty",
    "UsedPasskey",
    "authentication_options",
    "finish_authentication",
    "finish_registration",
    "registration_options",
]

# Purposes of a challenge: each ceremony accepts only its own.
REGISTER, LOGIN, STEP_UP = "register", "login", "step_up"


class PasskeyError(CoreError, ValueError):
    """A passkey operation cannot be done as asked."""

    code = "passkey_error"


class PasskeyRejected(PasskeyError):
    """The browser's answer is refused; ``reason`` says why (for the JSON error and audit)."""

    code = "passkey_rejected"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoPasskeys(PasskeyError):
    """The user has no passkey to authenticate with."""

    code = "no_passkeys"


@dataclass(frozen=True)
class RelyingParty:
    """Who Tessera is to authenticators: RP id (a domain), name, origin, challenge life."""

    id: str
    name: str
    origin: str
    timeout: timedelta


@dataclass(frozen=True)
class UsedPasskey:
    """A passkey that just answered: which one, and the RFC 8176 ``amr`` values it proves."""

    passkey_id: int
    name: str
    amr: list[str]
    user_verified: bool


# The library's messages name the failed check; these give each a stable machine code.
_REASONS = (("origin", "wrong_origin"), ("RP ID", "wrong_rp_id"), ("sign count", "sign_count"),
            ("challenge", "challenge"), ("signature", "bad_signature"),
            ("User was not present", "user_not_present"),
            ("User verification", "user_not_verified"))


def _reason(exc: WebAuthnException) -> str:
    text = str(exc)
    return next((code for needle, code in _REASONS if needle in text), "invalid_response")


def _issue_challenge(session: Session, rp: RelyingParty, challenge: bytes, user_id: int,
                     purpose: str, binding: str, now: datetime) -> None:
    """Store a new challenge, the only live one for this ceremony: earlier ones with the
    same user, purpose and binding go in the same transaction, so asking for options
    again and again cannot pile rows up (expired ones are swept too)."""
    try:
        session.execute(delete(WebauthnChallenge).where(WebauthnChallenge.expires_at <= now))
        session.execute(delete(WebauthnChallenge).where(
            WebauthnChallenge.user_id == user_id, WebauthnChallenge.purpose == purpose,
            WebauthnChallenge.binding == binding).execution_options(synchronize_session=False))
        session.add(WebauthnChallenge(challenge_hash=sha256_hex(bytes_to_base64url(challenge)),
                                      user_id=user_id, purpose=purpose, binding=binding,
                                      expires_at=now + rp.timeout))
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _spend_challenge(session: Session, credential: dict[str, Any], user_id: int, purpose: str,
                     binding: str, now: datetime) -> bytes:
    """The challenge the answer signed, spent now if it is this ceremony's, live and unused.

    Spent before the answer is checked: a refused answer costs its challenge too.
    """
    challenge = _client_challenge(credential)
    try:
        result = session.execute(
            delete(WebauthnChallenge)
            .where(WebauthnChallenge.challenge_hash == sha256_hex(bytes_to_base64url(challenge)),
                   WebauthnChallenge.user_id == user_id, WebauthnChallenge.purpose == purpose,
                   WebauthnChallenge.binding == binding, WebauthnChallenge.expires_at > now)
            .execution_options(synchronize_session=False))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if rowcount(result) != 1:
        raise PasskeyRejected("challenge")  # unknown, used, expired, or another ceremony's
    return challenge


def _client_challenge(credential: dict[str, Any]) -> bytes:
    try:
        raw = base64url_to_bytes(credential["response"]["clientDataJSON"])
        challenge = base64url_to_bytes(json.loads(raw)["challenge"])
    except (KeyError, TypeError, ValueError):  # ValueError covers binascii and JSON errors
        raise PasskeyRejected("malformed") from None
    if not challenge:
        raise PasskeyRejected("malformed")
    return challenge


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    known = {t.value for t in AuthenticatorTransport}
    return [PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(p.credential_id),
        transports=[AuthenticatorTransport(t) for t in p.transports if t in known] or None)
        for p in passkeys]


def registration_options(session: Session, rp: RelyingParty, user_id: int, username: str,
                         binding: str, now: datetime) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()``; the user's passkeys are excluded."""
    options = webauthn.generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_name=username, user_id=str(user_id).encode(),
        timeout=int(rp.timeout.total_seconds() * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(list_passkeys(session, user_id)))
    _issue_challenge(session, rp, options.challenge, user_id, REGISTER, binding, now)
    return dict(json.loads(webauthn.options_to_json(options)))


def finish_registration(session: Session, rp: RelyingParty, user_id: int, binding: str,
                        credential: dict[str, Any], name: str, now: datetime) -> Passkey:
    """Check the answer to ``registration_options`` and store its credential."""
    challenge = _spend_challenge(session, credential, user_id, REGISTER, binding, now)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin)
        transports = [t.value for t in
                      webauthn.helpers.parse_registration_credential_json(credential)
                      .response.transports or []]
    except WebAuthnException as exc:
        raise PasskeyRejected(_reason(exc)) from None
    except (KeyError, TypeError, ValueError):  # a shape the library's parser let through
        raise PasskeyRejected("malformed") from None
    passkey = Passkey(user_id=user_id, credential_id=bytes_to_base64url(verified.credential_id),
                      public_key=verified.credential_public_key,
                      sign_count=verified.sign_count, name=name, transports=transports,
                      aaguid=verified.aaguid,
                      backup_eligible=(verified.credential_device_type
                                       is CredentialDeviceType.MULTI_DEVICE),
                      created_at=now)
    session.add(passkey)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # the unique credential id: registered already, here or elsewhere
        raise PasskeyRejected("already_registered") from None
    return passkey


def authentication_options(session: Session, rp: RelyingParty, user_id: int, purpose: str,
                           binding: str, now: datetime) -> dict[str, Any]:
    """Options for ``navigator.credentials.get()`` naming the user's passkeys."""
    passkeys = list_passkeys(session, user_id)
    if not passkeys:
        raise NoPasskeys("You have no passkey.")
    options = webauthn.generate_authentication_options(
        rp_id=rp.id, timeout=int(rp.timeout.total_seconds() * 1000),
        allow_credentials=_descriptors(passkeys),
        user_verification=UserVerificationRequirement.PREFERRED)
    _issue_challenge(session, rp, options.challenge, user_id, purpose, binding, now)
    return dict(json.loads(webauthn.options_to_json(options)))


def _own_passkey(session: Session, credential: dict[str, Any], user_id: int) -> Passkey:
    raw_id = credential.get("rawId", credential.get("id"))
    passkey: Passkey | None = session.scalar(
        select(Passkey).where(Passkey.credential_id == raw_id)) if isinstance(raw_id, str) else None
    if passkey is None or passkey.user_id != user_id:
        raise PasskeyRejected("unknown_credential")  # someone else's is as good as none
    return passkey


def finish_authentication(session: Session, rp: RelyingParty, user_id: int, purpose: str,
                          binding: str, credential: dict[str, Any], now: datetime) -> UsedPasskey:
    """Check an answer to ``authentication_options``; the passkey's counter moves on."""
    challenge = _spend_challenge(session, credential, user_id, purpose, binding, now)
    passkey = _own_passkey(session, credential, user_id)
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count)
    except WebAuthnException as exc:
        raise PasskeyRejected(_reason(exc)) from None
    except (KeyError, TypeError, ValueError):  # a shape the library's parser let through
        raise PasskeyRejected("malformed") from None
    _advance_counter(session, passkey, verified.new_sign_count, now)
    kind = "swk" if passkey.backup_eligible else "hwk"
    return UsedPasskey(passkey.id, passkey.name, [kind, "user"], verified.user_verified)


def _advance_counter(session: Session, passkey: Passkey, new_count: int, now: datetime) -> None:
    """Record the counter the answer carried, unless another answer moved it meanwhile."""
    try:
        result = session.execute(
            update(Passkey)
            .where(Passkey.id == passkey.id, Passkey.sign_count == passkey.sign_count)
            .values(sign_count=new_count, last_used_at=now)
            .execution_options(synchronize_session=False))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if rowcount(result) != 1:
        raise PasskeyRejected("sign_count")
