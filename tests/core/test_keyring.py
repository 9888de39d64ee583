"""app/core/keyring without an app: snapshots from rows, one algorithm per key, low-S ES256,
and the Keyring's refresh, single-flight reload and cooldown (SPEC §3 step 4, §4)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from joserfc import jws
from joserfc.util import urlsafe_b64decode

from app.core.keyring import (
    Keyring,
    KeyringSnapshot,
    KeyringUnavailable,
    legacy_kid,
    signing_registry,
)
from tests.support.keyrings import LEGACY_SECRET, NOW, key_row, snapshot_of

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_snapshot_sorts_keys_by_state() -> None:
    rows = [key_row("active"), key_row("standby", "standby"),
            key_row("retired", "retired", retired_at=NOW - timedelta(minutes=5)),
            key_row("old", "retired", retired_at=NOW - timedelta(hours=1)),
            key_row("expired", "expired"), key_row("revoked", "revoked")]
    snapshot = snapshot_of(rows, legacy=(LEGACY_SECRET,), phase="dual")
    assert set(snapshot.keys) == {"active", "standby", "retired", legacy_kid(LEGACY_SECRET)}
    assert snapshot.revoked_kids == {"revoked"}
    assert snapshot.expired_kids == {"old", "expired"}  # retired past every token's life
    published = json.loads(snapshot.jwks_body)["keys"]
    assert sorted(k["kid"] for k in published) == ["active", "retired", "standby"]
    assert all("d" not in k for k in published)  # public halves only
    assert snapshot.signer is not None and snapshot.signer.kid == "active"
    assert snapshot.legacy_keys[0].legacy and snapshot.legacy_keys[0].alg == "HS256"


def test_the_etag_follows_the_published_keys() -> None:
    rows = [key_row("a")]
    assert snapshot_of(rows).jwks_etag == snapshot_of(rows).jwks_etag
    assert snapshot_of(rows).jwks_etag != snapshot_of([*rows, key_row("b", "standby")]).jwks_etag


@pytest.mark.parametrize(("phase", "hs256", "signs"), [
    ("legacy", True, "HS256"), ("dual", True, "ES256"), ("asymmetric", False, "ES256"),
])
def test_the_phase_decides_hs256_and_the_signer(phase: str, hs256: bool, signs: str) -> None:
    snapshot = snapshot_of([key_row("k")], legacy=(LEGACY_SECRET,), phase=phase)
    signer = snapshot.current_signer()
    assert snapshot.accepts_hs256 is hs256 and signer is not None and signer.alg == signs


def test_a_snapshot_is_its_own_key_source() -> None:
    snapshot = snapshot_of([key_row("k")])
    assert snapshot.current() is snapshot and snapshot.reload_for_unknown_kid() is snapshot


def test_the_legacy_kid_names_no_secret() -> None:
    kid = legacy_kid(LEGACY_SECRET)
    assert kid.startswith("legacy-") and LEGACY_SECRET not in kid
    assert kid == legacy_kid(LEGACY_SECRET) != legacy_kid(LEGACY_SECRET + "x")


def test_es256_signs_low_s_and_verifies_only_it() -> None:
    snapshot = snapshot_of([key_row("k")])
    signer, key = snapshot.signer, snapshot.keys["k"]
    assert signer is not None
    for n in range(40):  # about half of raw ECDSA signatures have the high S
        text = jws.serialize_compact({"alg": "ES256", "kid": "k"}, f"p{n}".encode(), signer.key,
                                     registry=signing_registry("ES256"))
        head, body, sig = text.split(".")
        raw = urlsafe_b64decode(sig.encode())
        s = int.from_bytes(raw[32:], "big")
        assert s <= P256_ORDER // 2 and key.verify(f"{head}.{body}".encode(), raw)
        twin = raw[:32] + (P256_ORDER - s).to_bytes(32, "big")
        assert not key.verify(f"{head}.{body}".encode(), twin)


def test_a_key_verifies_with_its_own_algorithm_only() -> None:
    snapshot = snapshot_of([key_row("e"), key_row("r", "standby", alg="RS256")],
                           legacy=(LEGACY_SECRET,), phase="dual")
    assert {k.kid: k.alg for k in snapshot.keys.values()} == {
        "e": "ES256", "r": "RS256", legacy_kid(LEGACY_SECRET): "HS256"}
    rsa_signature = b"\x00" * 256
    assert not snapshot.keys["e"].verify(b"data", rsa_signature)
    assert not snapshot.keys["r"].verify(b"data", b"\x00" * 64)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Loader:
    def __init__(self) -> None:
        self.calls, self.fail = 0, False

    def __call__(self) -> KeyringSnapshot:
        self.calls += 1
        if self.fail:
            raise KeyringUnavailable("down")
        return snapshot_of([key_row(f"k{self.calls}")])


def test_the_keyring_refreshes_after_its_interval() -> None:
    clock, loader = _Clock(), _Loader()
    ring = Keyring(loader, refresh_seconds=5, cooldown_seconds=1, monotonic=clock)
    first = ring.current()
    clock.now += 4.9
    assert ring.current() is first and loader.calls == 1
    clock.now += 0.1
    assert ring.current() is not first and loader.calls == 2
    ring.invalidate()
    ring.current()
    assert loader.calls == 3


def test_unknown_kid_reloads_are_cooled_down() -> None:
    clock, loader = _Clock(), _Loader()
    ring = Keyring(loader, refresh_seconds=60, cooldown_seconds=2, monotonic=clock)
    ring.current()
    clock.now += 2
    ring.reload_for_unknown_kid()
    for _ in range(100):  # a flood of random kids within the cooldown costs nothing
        ring.reload_for_unknown_kid()
    assert loader.calls == 2
    clock.now += 2
    ring.reload_for_unknown_kid()
    assert loader.calls == 3


def test_a_failed_reload_keeps_the_last_keys_and_a_failed_first_load_raises() -> None:
    clock, loader = _Clock(), _Loader()
    ring = Keyring(loader, refresh_seconds=5, cooldown_seconds=1, monotonic=clock)
    first = ring.current()
    loader.fail = True
    clock.now += 5
    assert ring.current() is first
    assert ring.current() is first and loader.calls == 2  # retried after the interval only
    empty = Keyring(loader, refresh_seconds=5, cooldown_seconds=1, monotonic=clock)
    with pytest.raises(KeyringUnavailable):
        empty.current()


def test_readers_never_wait_for_a_reload_in_progress() -> None:
    clock = _Clock()
    release, entered = threading.Event(), threading.Event()
    calls = []

    def loader() -> KeyringSnapshot:
        calls.append(1)
        if len(calls) == 2:
            entered.set()
            assert release.wait(10)
        return snapshot_of([key_row(f"k{len(calls)}")])

    ring = Keyring(loader, refresh_seconds=5, cooldown_seconds=1, monotonic=clock)
    first = ring.current()
    clock.now += 5
    slow = threading.Thread(target=ring.current)
    slow.start()
    assert entered.wait(10)
    assert ring.current() is first  # single-flight: the old snapshot, at once
    release.set()
    slow.join(10)
    assert ring.current() is not first and len(calls) == 2
