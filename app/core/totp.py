"""RFC 6238 TOTP through pyotp, and what an enrolment shows (SPEC §7); no database here.

SHA-1, 6 digits, 30 s steps, one step of drift either way: what every
authenticator app assumes. ``app.core.mfa`` keeps the credentials and spends
the steps.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno

__all__ = ["DIGEST", "DIGITS", "DRIFT_STEPS", "PERIOD", "Enrollment", "enrollment",
           "matching_step", "qr_svg", "totp"]

DIGEST = hashlib.sha1  # RFC 6238's default; what every authenticator app assumes
DIGITS = 6
PERIOD = 30
DRIFT_STEPS = 1


@dataclass(frozen=True)
class Enrollment:
    """A pending enrolment, shown to the user once: the secret, its URI and QR code."""

    secret: str
    uri: str
    qr_svg: str


def totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, digest=DIGEST, interval=PERIOD)


def enrollment(secret: str, username: str, issuer_name: str) -> Enrollment:
    uri = totp(secret).provisioning_uri(name=username, issuer_name=issuer_name)
    return Enrollment(secret=secret, uri=uri, qr_svg=qr_svg(uri))


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code, embeddable in a page (no XML declaration, no script)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, svgns=True)
    return buffer.getvalue().decode()


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within the drift window whose code is ``code``, if any."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")  # pyotp would read it as local time
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    generator = totp(secret)
    current = generator.timecode(now)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        if hmac.compare_digest(generator.at(now, counter_offset=offset), code):
            return current + offset
    return None
