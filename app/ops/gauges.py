"""Gauges an operator alerts on (issue 19), measured when /metrics is scraped.

They are read at scrape time rather than kept as process gauges: the first
two come from the database (the same for every worker), and the last two are
the state of the worker that answers the scrape, which is what a load
balancer's next request would meet.

- ``tessera_active_key_age_seconds``: since the active key started signing;
- ``tessera_legacy_tokens_24h``: legacy HS256 tokens accepted in the per-day
  buckets that overlap the last 24 h (today and yesterday, UTC: an upper bound);
- ``tessera_legacy_token_last_seen_timestamp_seconds``: the last one (absent if none);
- ``tessera_revocation_mirror_state{state}``: 1 for the state the local copy of the
  denylist is in (``off``, ``live``, ``connecting``), 0 for the others;
- ``tessera_redis_up``: whether Redis answered a PING (absent without REDIS_URL).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select

from .. import state
from ..core import migration
from ..extensions import db, redis_store
from ..models import SigningKey
from ..security.revocation import revocations

__all__ = ["scrape"]

MIRROR_STATES = ("off", "live", "connecting")


def _active_key_age(now: datetime) -> float | None:
    row = db.session.execute(select(SigningKey.activated_at, SigningKey.created_at)
                             .where(SigningKey.state == "active")).first()
    if row is None:
        return None
    started: datetime = row.activated_at or row.created_at
    return (now - started).total_seconds()


def _mirror_state() -> str:
    mirror = revocations().state.mirror
    if mirror is None:
        return "off"
    return "live" if mirror.live else "connecting"


def _redis_up() -> bool | None:
    client = redis_store.client
    if client is None:
        return None
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class _Snapshot(Collector):
    """The values read for one scrape, as metric families."""

    def __init__(self, now: datetime) -> None:
        usage = migration.legacy_usage(db.session(), days=2)
        since = (now - timedelta(days=1)).date()
        self.legacy = sum(day.count for day in usage if day.day >= since)
        self.last_legacy = max((day.last_seen_at for day in usage), default=None)
        self.key_age = _active_key_age(now)
        self.mirror = _mirror_state()
        self.redis = _redis_up()

    def collect(self) -> Iterator[Metric]:
        if self.key_age is not None:
            yield GaugeMetricFamily("tessera_active_key_age_seconds",
                                    "Seconds since the active signing key started signing.",
                                    value=self.key_age)
        yield GaugeMetricFamily("tessera_legacy_tokens_24h",
                                "Legacy HS256 tokens accepted today and yesterday (UTC).",
                                value=self.legacy)
        if self.last_legacy is not None:
            yield GaugeMetricFamily("tessera_legacy_token_last_seen_timestamp_seconds",
                                    "When the last legacy HS256 token was accepted.",
                                    value=self.last_legacy.timestamp())
        mirror = GaugeMetricFamily("tessera_revocation_mirror_state",
                                   "State of this worker's copy of the revocation denylist.",
                                   labels=["state"])
        for name in MIRROR_STATES:
            mirror.add_metric([name], 1.0 if name == self.mirror else 0.0)
        yield mirror
        if self.redis is not None:
            yield GaugeMetricFamily("tessera_redis_up", "Whether Redis answered a PING.",
                                    value=1.0 if self.redis else 0.0)


def scrape() -> bytes:
    """The gauges in the Prometheus text format, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(state.now()))
    return generate_latest(registry)
