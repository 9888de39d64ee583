"""The trust row of app/core/revocation_trust on the database alone (no Redis needed).

A rebuild may trust Redis only if no write failed while it copied: the
``generation`` it read must not have moved (SPEC §6).
"""

from __future__ import annotations

from sqlalchemy import Engine

from app.core.revocation_trust import TrustKeeper, TrustStore
from tests.support.databases import NOW


def test_a_missing_row_is_untrusted_and_claim_creates_it(engine: Engine) -> None:
    store = TrustStore(lambda: engine)
    assert not store.read().trusted
    claimed = store.claim(NOW)
    assert not claimed.trusted and store.read().generation == claimed.generation


def test_a_failure_during_a_rebuild_is_never_forgotten(engine: Engine) -> None:
    store = TrustStore(lambda: engine)
    before = store.claim(NOW)
    store.distrust("write_failed:ConnectionError", NOW)  # a revocation's Redis write failed
    assert not store.confirm(before.generation, "epoch-1", "server-1", NOW)
    assert not store.read().trusted
    again = store.claim(NOW)
    assert store.confirm(again.generation, "epoch-2", "server-1", NOW)
    row = store.read()
    assert row.trusted and row.epoch == b"epoch-2" and row.identity == "server-1"
    assert not store.confirm(again.generation, "epoch-3", "server-1", NOW)  # used up


def test_distrust_without_a_row_creates_it_untrusted(engine: Engine) -> None:
    store = TrustStore(lambda: engine)
    store.distrust("redis_changed", NOW)
    assert not store.read().trusted


def test_the_keeper_believes_only_its_epoch_on_its_server(engine: Engine) -> None:
    store = TrustStore(lambda: engine)
    store.confirm(store.claim(NOW).generation, "e1", "server-1", NOW)
    keeper = TrustKeeper(store, 60.0, monotonic=lambda: 0.0)
    assert not keeper.agrees(b"e1")  # not read yet, and no server seen
    keeper.reread()
    keeper.observe("server-1")
    assert keeper.agrees(b"e1") and not keeper.agrees(b"e2") and not keeper.agrees(None)
    keeper.observe("server-2")  # a restart or failover: another run id
    assert not keeper.agrees(b"e1") and not keeper.plausible()
    store.distrust("write_failed", NOW)
    keeper.observe("server-1")
    assert keeper.agrees(b"e1")  # the old view, until the row is read again
    assert not keeper.agrees_after_reread(b"e1")
