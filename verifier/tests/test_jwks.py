"""The JWKS cache: Cache-Control, ETag, unknown kids, Tessera unreachable."""

from __future__ import annotations

import threading
import time

from tessera_verifier.fetch import CachedDocument, max_age
from tessera_verifier.jwks import JwksCache, public_jwks


def test_max_age_parsing() -> None:
    assert max_age("public, max-age=300") == 300
    assert max_age("no-store") == 0 and max_age("no-cache, max-age=5") == 0
    assert max_age(None) is None and max_age("public") is None


def test_private_and_symmetric_keys_are_never_taken() -> None:
    keys = public_jwks({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
                                 {"kty": "EC", "kid": "p", "d": "x"},
                                 {"kty": "EC", "kid": "ok", "crv": "P-256"}, {"kid": 3}]})
    assert list(keys) == ["ok"]


def test_etag_revalidation_and_max_age(tessera) -> None:  # type: ignore[no-untyped-def]
    tessera.max_age = 1
    cache = JwksCache(tessera.url + "/jwks.json", background=False)
    assert set(cache.keys()) == {"k1"}
    cache.keys()  # within max-age: no request
    assert tessera.requests["/jwks.json"] == 1
    time.sleep(1.1)
    assert set(cache.keys()) == {"k1"}  # expired: revalidated, 304, same keys
    assert tessera.requests["/jwks.json"] == 2
    assert cache.stats["not_modified"] == 1 and cache.stats["updates"] == 1


def test_background_refresh_before_expiry(tessera) -> None:  # type: ignore[no-untyped-def]
    tessera.max_age = 1
    cache = JwksCache(tessera.url + "/jwks.json", background=True)
    try:
        cache.keys()
        tessera.add_key("k2")
        deadline = time.monotonic() + 3
        while "k2" not in cache.document._value and time.monotonic() < deadline:
            time.sleep(0.05)
        # the thread fetched it without any caller waiting on a fetch
        assert "k2" in cache.document._value
    finally:
        cache.close()


def test_unknown_kid_single_flight_with_cooldown(tessera) -> None:  # type: ignore[no-untyped-def]
    cache = JwksCache(tessera.url + "/jwks.json", background=False, unknown_kid_cooldown=30)
    cache.keys()
    tessera.add_key("k2")
    tessera.delay = 0.3  # the refetch is slow: concurrent callers must share it
    found: list[object] = []
    threads = [threading.Thread(target=lambda: found.append(cache.get("k2"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert all(key is not None for key in found) and len(found) == 8
    assert tessera.requests["/jwks.json"] == 2  # the first fetch and one refetch
    tessera.delay = 0
    for n in range(50):  # a flood of random kids inside the cooldown costs nothing
        assert cache.get(f"random-{n}") is None
    assert tessera.requests["/jwks.json"] == 2
    assert cache.stats["unknown_kid_refetches"] == 1
    assert cache.stats["unknown_kid_throttled"] >= 57


def test_last_good_set_served_while_unreachable(tessera, caplog) -> None:  # type: ignore[no-untyped-def]
    cache = JwksCache(tessera.url + "/jwks.json", background=False, min_refresh=0.1,
                      max_refresh=0.1)
    assert set(cache.keys()) == {"k1"}
    tessera.down = True
    time.sleep(0.15)
    with caplog.at_level("WARNING", logger="tessera_verifier.fetch"):
        assert set(cache.keys()) == {"k1"}
    assert cache.stats["stale"] is True and cache.stats["stale_serves"] == 1
    assert "serving the copy" in caplog.text
    tessera.down = False
    time.sleep(0.15)
    assert set(cache.keys()) == {"k1"} and cache.stats["stale"] is False


def test_never_fetched_and_unreachable_raises(tessera) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from tessera_verifier.fetch import DocumentUnavailable

    tessera.down = True
    document = CachedDocument(tessera.url + "/jwks.json", public_jwks, background=False)
    with pytest.raises(DocumentUnavailable):
        document.value()
