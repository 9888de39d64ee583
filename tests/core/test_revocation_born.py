"""WrittenSince (app/core/revocation_born.py): when a never-read jti key is known absent."""

from __future__ import annotations

import time

from app.core.revocation_born import WrittenSince


def test_no_record_no_answer() -> None:
    written = WrittenSince(margin=0.0)
    assert not written.never_written("k", time.time() + 3600)


def test_born_after_the_record_began_and_the_margin() -> None:
    written = WrittenSince(margin=60.0)
    written.restart()
    assert written.never_written("k", written.since + 60)
    assert not written.never_written("k", written.since + 59)  # the issuer's clock may lead
    written.wrote("k")
    assert not written.never_written("k", written.since + 3600)
    assert written.never_written("other", written.since + 3600)


def test_too_many_keys_restart_the_record_later() -> None:
    written = WrittenSince(margin=0.0, max_keys=2)
    written.restart()
    began = written.since
    written.wrote("a")
    written.wrote("b")
    time.sleep(0.01)
    written.wrote("c")  # over the bound: the record begins again now, empty
    assert written.since > began
    assert not written.never_written("d", began + 0.001)  # born before the new moment
    assert written.never_written("a", written.since)


def test_stop_ends_the_record() -> None:
    written = WrittenSince(margin=0.0)
    written.restart()
    written.stop()
    assert not written.never_written("k", time.time() + 3600)
