"""The worker's freeze schedule (app/gc_schedule.py): freezes in batches, reclaims cycles."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from app.gc_schedule import FreezeSchedule


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    """The test process must not keep anything frozen: its later tests rely on the
    collector (unclosed sockets are reported when their cycles are collected)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Node:
    """One half of a reference cycle."""

    other: _Node | None = None


def _cycle() -> tuple[_Node, weakref.ref[_Node]]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


def test_survivors_are_frozen_every_n_requests_and_not_before() -> None:
    schedule = FreezeSchedule(every=3)
    schedule.request_done()
    schedule.request_done()
    assert gc.get_freeze_count() == 0
    kept = [_Node() for _ in range(100)]
    schedule.request_done()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)
    assert gc.get_count()[1:] == (0, 0)  # the young generations were collected first
    schedule.request_done()
    assert gc.get_freeze_count() == frozen  # the next batch waits for its third request


def test_young_garbage_is_collected_before_a_freeze_not_frozen() -> None:
    schedule = FreezeSchedule(every=1)
    node, alive = _cycle()
    del node  # garbage, but a cycle: only the collector frees it
    schedule.request_done()
    assert alive() is None


def test_a_cycle_that_dies_frozen_waits_for_the_reclaim() -> None:
    schedule = FreezeSchedule(every=1, reclaim_every=3)
    node, alive = _cycle()
    schedule.request_done()  # freeze 1: the live cycle goes to the permanent generation
    del node
    gc.collect()
    assert alive() is not None  # frozen: no collection walks it
    schedule.request_done()  # freeze 2
    assert alive() is not None
    schedule.request_done()  # the third: unfreeze and a full collection
    assert alive() is None


def test_a_frozen_object_without_cycles_is_freed_at_once() -> None:
    schedule = FreezeSchedule(every=1)
    node = _Node()
    alive = weakref.ref(node)
    schedule.request_done()
    del node  # a cache eviction: reference counting frees it, frozen or not
    assert alive() is None


def test_every_zero_turns_the_schedule_off() -> None:
    schedule = FreezeSchedule(every=0)
    for _ in range(5):
        schedule.request_done()
    assert gc.get_freeze_count() == 0
