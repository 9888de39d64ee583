"""The MFA service on a real migrated database (SPEC §7): enrolment, replay, drift, recovery.

Time is the ``clock`` fixture's, moved by hand; codes are computed with a
plain ``pyotp.TOTP(secret)``, which is what an authenticator app does.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import segno
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app import state
from app.core import mfa
from app.core.clock import FrozenClock
from app.core.crypto import SealError, unseal
from app.core.users import create_user
from app.extensions import db
from app.models import TotpCredential

PASSWORD = "correct horse battery staple"
VECTORS = Path(__file__).parent.parent / "vectors" / "rfc6238.json"
RECOVERY_FORMAT = re.compile(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}")


def code_at(secret: str, when: datetime, steps: int = 0) -> str:
    """The code an authenticator app shows ``steps`` time steps away from ``when``."""
    return pyotp.TOTP(secret).at(when + timedelta(seconds=30 * steps))


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@dataclass
class Enrolled:
    user_id: int
    secret: str
    recovery_codes: list[str]


@pytest.fixture
def session(app: Flask) -> Iterator[Any]:
    """The app's session, inside an app context for the whole test."""
    with app.app_context():
        yield db.session


@pytest.fixture
def kek(app: Flask) -> bytes:
    with app.app_context():
        key = state.settings().key_encryption_key
    assert key is not None
    return key


@pytest.fixture
def user_id(session: Any, clock: FrozenClock) -> int:
    return create_user(session, "alice", PASSWORD, (), clock()).id


@pytest.fixture
def enrolled(session: Any, kek: bytes, user_id: int, clock: FrozenClock) -> Enrolled:
    """Alice with MFA on; the clock then moved ten steps on, off a step boundary."""
    enrollment = mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", clock())
    codes = mfa.confirm_enrollment(session, kek, user_id, code_at(enrollment.secret, clock()),
                                   clock())
    clock.advance(10 * 30 + 7)
    return Enrolled(user_id, enrollment.secret, codes)


def engine_of(app: Flask) -> Engine:
    with app.app_context():
        return db.engine


# -- enrolment ---------------------------------------------------------------------------


def test_a_confirmed_enrolment_switches_mfa_on(session: Any, kek: bytes, user_id: int,
                                              clock: FrozenClock) -> None:
    enrollment = mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", clock())
    assert len(base64.b32decode(enrollment.secret)) == 20  # 160 bits
    assert not mfa.is_enabled(session, user_id)

    codes = mfa.confirm_enrollment(session, kek, user_id, code_at(enrollment.secret, clock()),
                                   clock())
    assert mfa.is_enabled(session, user_id)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(RECOVERY_FORMAT.fullmatch(code) for code in codes)  # 16 base32: 80 bits
    assert mfa.remaining_recovery_codes(session, user_id) == 10


def test_the_uri_carries_the_standard_parameters(session: Any, kek: bytes, user_id: int,
                                                clock: FrozenClock) -> None:
    enrollment = mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", clock())
    assert enrollment.uri.startswith("otpauth://totp/Tessera:alice?")
    parsed = pyotp.parse_uri(enrollment.uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.issuer, parsed.name) == (enrollment.secret, "Tessera", "alice")
    assert (parsed.digits, parsed.interval, parsed.digest) == (6, 30, hashlib.sha1)


def test_a_wrong_code_does_not_confirm(session: Any, kek: bytes, user_id: int,
                                       clock: FrozenClock) -> None:
    enrollment = mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", clock())
    good = code_at(enrollment.secret, clock())
    with pytest.raises(mfa.InvalidCode):
        mfa.confirm_enrollment(session, kek, user_id, other_code(good), clock())
    assert not mfa.is_enabled(session, user_id)
    assert mfa.remaining_recovery_codes(session, user_id) == 0
    assert len(mfa.confirm_enrollment(session, kek, user_id, good, clock())) == 10


def test_enrolment_states(session: Any, kek: bytes, user_id: int, clock: FrozenClock) -> None:
    now = clock()
    with pytest.raises(mfa.NoPendingEnrollment):
        mfa.confirm_enrollment(session, kek, user_id, "123456", now)
    first = mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", now)
    second = mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", now)  # replaces
    assert first.secret != second.secret
    with pytest.raises(mfa.InvalidCode):
        mfa.confirm_enrollment(session, kek, user_id, code_at(first.secret, now), now)
    mfa.confirm_enrollment(session, kek, user_id, code_at(second.secret, now), now)

    with pytest.raises(mfa.MfaAlreadyEnabled):
        mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", now)
    with pytest.raises(mfa.NoPendingEnrollment):
        mfa.confirm_enrollment(session, kek, user_id, code_at(second.secret, now, 1), now)
    assert session.execute(text("SELECT count(*) FROM totp_credentials")).scalar() == 1
    assert issubclass(mfa.InvalidCode, mfa.MfaError) and issubclass(mfa.MfaError, ValueError)


# -- the QR code -------------------------------------------------------------------------


def _svg_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules drawn by segno's one-path SVG (``M x y.5``, ``h n``, ``m dx dy``)."""
    path = re.search(r' d="([^"]+)"', svg)
    assert path is not None
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.group(1)):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            dark.update((int(x) + i, int(y)) for i in range(int(a)))
            x += float(a)
    return dark


def _matrix_modules(qr: segno.QRCode, border: int = 4) -> set[tuple[int, int]]:
    return {(col + border, row + border)
            for row, line in enumerate(qr.matrix) for col, bit in enumerate(line) if bit}


def test_the_qr_code_encodes_the_uri(session: Any, kek: bytes, user_id: int,
                                     clock: FrozenClock) -> None:
    enrollment = mfa.begin_enrollment(session, kek, user_id, "alice", "Tessera", clock())
    svg = enrollment.qr_svg
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "<?xml" not in svg and "<script" not in svg.lower()
    assert not re.search(r"\son\w+=", svg, re.IGNORECASE)  # no event handlers either
    # The drawing is, module for module, segno's QR symbol of exactly this URI...
    assert _svg_modules(svg) == _matrix_modules(segno.make(enrollment.uri, error="m"))
    assert _svg_modules(svg) != _matrix_modules(segno.make(enrollment.uri + "x", error="m"))
    # ...and byte for byte what segno renders for it.
    expected = io.BytesIO()
    segno.make(enrollment.uri, error="m").save(expected, kind="svg", scale=4, xmldecl=False,
                                               svgns=True)
    assert svg == expected.getvalue().decode()


# -- TOTP: format, drift, replay ---------------------------------------------------------


def test_malformed_codes_are_refused_without_spending_the_step(
    session: Any, kek: bytes, enrolled: Enrolled, clock: FrozenClock
) -> None:
    code = code_at(enrolled.secret, clock())
    arabic_indic = code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for bad in ("", code[:5], code + "0", f" {code}", f"{code}\n", f"{code[:3]} {code[3:]}",
                arabic_indic, "abcdef"):
        assert not mfa.verify_totp(session, kek, enrolled.user_id, bad, clock()), repr(bad)
    assert mfa.verify_totp(session, kek, enrolled.user_id, code, clock())


@pytest.mark.parametrize(("steps", "accepted"), [(-2, False), (-1, True), (0, True),
                                                 (1, True), (2, False)])
def test_one_step_of_drift_either_way(session: Any, kek: bytes, enrolled: Enrolled,
                                      clock: FrozenClock, steps: int, accepted: bool) -> None:
    code = code_at(enrolled.secret, clock(), steps)
    assert mfa.verify_totp(session, kek, enrolled.user_id, code, clock()) is accepted


def test_a_code_is_accepted_once(session: Any, kek: bytes, enrolled: Enrolled,
                                 clock: FrozenClock) -> None:
    code = code_at(enrolled.secret, clock())
    assert mfa.verify_totp(session, kek, enrolled.user_id, code, clock())
    assert not mfa.verify_totp(session, kek, enrolled.user_id, code, clock())
    clock.advance(30)  # still inside the drift window as "one step ago": still refused
    assert not mfa.verify_totp(session, kek, enrolled.user_id, code, clock())
    assert mfa.verify_second_factor(session, kek, enrolled.user_id, code, clock()) is None


def test_a_step_older_than_the_last_accepted_is_refused(
    session: Any, kek: bytes, enrolled: Enrolled, clock: FrozenClock
) -> None:
    """Only the highest accepted step is stored, so acceptance moves forward only."""
    uid, now = enrolled.user_id, clock()
    assert mfa.verify_totp(session, kek, uid, code_at(enrolled.secret, now, 1), now)
    assert not mfa.verify_totp(session, kek, uid, code_at(enrolled.secret, now), now)
    assert not mfa.verify_totp(session, kek, uid, code_at(enrolled.secret, now, -1), now)


def test_replay_is_refused_from_another_process(
    app: Flask, make_app: Callable[..., Flask], kek: bytes, enrolled: Enrolled,
    clock: FrozenClock
) -> None:
    """Two apps, two engines, two sessions that both hold the credential as loaded before."""
    other = make_app()  # same database file (or PostgreSQL), its own engine and pool
    code, now = code_at(enrolled.secret, clock()), clock()
    with Session(engine_of(app)) as first, Session(engine_of(other)) as second:
        # Held, so each identity map keeps its copy: stale in `second` once `first` accepts.
        held = [s.get(TotpCredential, enrolled.user_id) for s in (first, second)]
        assert all(c is not None and c.confirmed_at is not None for c in held)
        assert mfa.verify_totp(first, kek, enrolled.user_id, code, now)
        assert not mfa.verify_totp(second, kek, enrolled.user_id, code, now)
        assert mfa.verify_second_factor(second, kek, enrolled.user_id, code, now) is None


def test_a_race_for_one_code_has_one_winner(
    app: Flask, make_app: Callable[..., Flask], kek: bytes, enrolled: Enrolled,
    clock: FrozenClock
) -> None:
    engines = [engine_of(app), engine_of(make_app())]
    code, now, racers = code_at(enrolled.secret, clock()), clock(), 8
    start = threading.Barrier(racers)

    def race(engine: Engine) -> bool:
        with Session(engine) as own:
            start.wait(timeout=10)
            return mfa.verify_totp(own, kek, enrolled.user_id, code, now)

    with ThreadPoolExecutor(racers) as pool:  # .map re-raises what a racer raised
        outcomes = list(pool.map(race, [engines[i % 2] for i in range(racers)]))
    assert sorted(outcomes) == [False] * (racers - 1) + [True], outcomes


# -- recovery codes ----------------------------------------------------------------------


def test_a_recovery_code_works_once_and_the_others_still_work(
    session: Any, kek: bytes, enrolled: Enrolled, clock: FrozenClock
) -> None:
    uid, codes, now = enrolled.user_id, enrolled.recovery_codes, clock()
    assert mfa.verify_second_factor(session, kek, uid, codes[0], now) == "recovery"
    assert mfa.verify_second_factor(session, kek, uid, codes[0], now) is None
    assert not mfa.use_recovery_code(session, uid, codes[0], now)
    assert mfa.remaining_recovery_codes(session, uid) == 9
    typed = [codes[1].upper(), codes[2].replace("-", ""), f"  {codes[3].replace('-', ' ')} "]
    for code in typed:  # normalised: case, dashes, spaces
        assert mfa.verify_second_factor(session, kek, uid, code, now) == "recovery", code
    for code in codes[4:]:
        assert mfa.use_recovery_code(session, uid, code, now)
    assert mfa.remaining_recovery_codes(session, uid) == 0


def test_second_factor_tells_which_factor_or_none(
    session: Any, kek: bytes, enrolled: Enrolled, clock: FrozenClock
) -> None:
    uid, now = enrolled.user_id, clock()
    code = code_at(enrolled.secret, now)
    assert mfa.verify_second_factor(session, kek, uid, other_code(code), now) is None
    assert mfa.verify_second_factor(session, kek, uid, "aaaa-bbbb-cccc-dddd", now) is None
    assert mfa.verify_second_factor(session, kek, uid, code, now) == "totp"
    stranger = create_user(session, "bob", PASSWORD, (), now).id  # MFA off: nothing passes
    assert mfa.verify_second_factor(session, kek, stranger, enrolled.recovery_codes[0],
                                    now) is None
    assert not mfa.verify_totp(session, kek, stranger, code, now)


def test_regenerating_invalidates_the_old_codes(session: Any, kek: bytes, enrolled: Enrolled,
                                                clock: FrozenClock) -> None:
    uid, old, now = enrolled.user_id, enrolled.recovery_codes, clock()
    assert mfa.use_recovery_code(session, uid, old[0], now)
    new = mfa.regenerate_recovery_codes(session, uid, now)
    assert len(new) == 10 and not set(new) & set(old)
    assert mfa.remaining_recovery_codes(session, uid) == 10
    assert not any(mfa.use_recovery_code(session, uid, code, now) for code in old)
    assert mfa.verify_second_factor(session, kek, uid, new[0], now) == "recovery"


def test_a_failed_regeneration_keeps_the_old_codes(
    session: Any, kek: bytes, enrolled: Enrolled, clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(value: str | bytes) -> str:
        raise RuntimeError("hashing failed")

    monkeypatch.setattr(mfa, "sha256_hex", broken)  # fails after the old codes were deleted
    with pytest.raises(RuntimeError):
        mfa.regenerate_recovery_codes(session, enrolled.user_id, clock())
    monkeypatch.undo()
    assert mfa.remaining_recovery_codes(session, enrolled.user_id) == 10  # rolled back
    assert mfa.use_recovery_code(session, enrolled.user_id, enrolled.recovery_codes[0], clock())


def test_recovery_codes_need_mfa_on(session: Any, user_id: int, clock: FrozenClock) -> None:
    with pytest.raises(mfa.MfaNotEnabled):
        mfa.regenerate_recovery_codes(session, user_id, clock())


# -- storage -----------------------------------------------------------------------------


def test_secrets_and_codes_are_not_stored_in_clear(session: Any, kek: bytes,
                                                   enrolled: Enrolled) -> None:
    raw = bytes(session.execute(text("SELECT secret_encrypted FROM totp_credentials")).scalar())
    assert enrolled.secret.encode() not in raw
    assert base64.b32decode(enrolled.secret) not in raw
    # Sealed for this user only: the purpose binds it to the user id.
    assert unseal(kek, raw, f"totp:{enrolled.user_id}").decode() == enrolled.secret
    with pytest.raises(SealError):
        unseal(kek, raw, f"totp:{enrolled.user_id + 1}")

    hashes = set(session.execute(text("SELECT code_hash FROM recovery_codes")).scalars())
    normalised = {code.replace("-", "") for code in enrolled.recovery_codes}
    assert hashes == {hashlib.sha256(code.encode()).hexdigest() for code in normalised}


def test_disable_removes_everything(session: Any, kek: bytes, enrolled: Enrolled,
                                    clock: FrozenClock) -> None:
    uid, now = enrolled.user_id, clock()
    mfa.disable(session, uid)
    for table in ("totp_credentials", "recovery_codes"):
        assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    assert not mfa.is_enabled(session, uid) and mfa.remaining_recovery_codes(session, uid) == 0
    assert mfa.verify_second_factor(session, kek, uid, enrolled.recovery_codes[0], now) is None
    assert not mfa.verify_totp(session, kek, uid, code_at(enrolled.secret, now), now)
    mfa.disable(session, uid)  # idempotent
    again = mfa.begin_enrollment(session, kek, uid, "alice", "Tessera", now)
    assert again.secret != enrolled.secret


# -- RFC 6238 ----------------------------------------------------------------------------


def test_rfc6238_vectors_with_our_parameters() -> None:
    """Appendix B's SHA-1 rows: pyotp with our digest and period, at 8 digits, gives them."""
    vectors = [v for v in json.loads(VECTORS.read_text()) if v["mode"] == "SHA1"]
    assert len(vectors) == 6
    secret = base64.b32encode(b"12345678901234567890").decode()
    eight = pyotp.TOTP(secret, digits=8, digest=mfa.DIGEST, interval=mfa.PERIOD)
    ours = pyotp.TOTP(secret, digits=mfa.DIGITS, digest=mfa.DIGEST, interval=mfa.PERIOD)
    for vector in vectors:
        assert eight.at(vector["time"]) == vector["totp"], vector
        # RFC 4226 truncation is a modulus: our 6 digits are the vector's last 6.
        assert ours.at(vector["time"]) == vector["totp"][-6:], vector
