"""Prometheus metrics (SPEC §9), correct across gunicorn workers.

Under gunicorn, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` before
any worker imports prometheus-client, so each worker writes its samples to
files there and ``/metrics`` sums them. Without it (tests, ``flask run``)
each app counts in its own registry.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["Metrics", "init_app", "metrics", "render"]

_EXT = "tessera.metrics"


class Metrics:
    """The counters of SPEC §9, registered in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.verifications = Counter(
            "tessera_token_verifications", "Access token verifications by result and reason.",
            ["result", "reason"], registry=registry)
        self.legacy_accepted = Counter(
            "tessera_legacy_tokens_accepted", "Legacy HS256 tokens accepted.", registry=registry)
        self.unknown_kids = Counter(
            "tessera_unknown_kids", "Tokens naming a kid the keyring does not hold.",
            registry=registry)
        self.logins = Counter("tessera_logins", "Login attempts by result.", ["result"],
                              registry=registry)
        self.refresh_reuse = Counter(
            "tessera_refresh_reuse", "Consumed refresh tokens presented again.", registry=registry)
        self.store_fallbacks = Counter(
            "tessera_revocation_store_fallbacks",
            "Revocation checks answered by the database because Redis failed.", ["reason"],
            registry=registry)
        self.rate_limited = Counter("tessera_rate_limited", "Requests refused by a rate limit.",
                                    ["endpoint"], registry=registry)
        self.events_emitted = Counter(
            "tessera_security_events_emitted", "Security events committed, by event type.",
            ["event_type"], registry=registry)
        self.events_delivered = Counter(
            "tessera_security_events_delivered", "SETs sent to receivers in poll answers.",
            registry=registry)
        self.events_acknowledged = Counter(
            "tessera_security_events_acknowledged",
            "SETs receivers acknowledged, by result (ack, error: reported in setErrs).",
            ["result"], registry=registry)
        self.latency = Histogram(
            "tessera_request_seconds", "Request latency by endpoint, method and status class.",
            ["endpoint", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry)
        # Labelled children looked up once: labels() costs more than observe() itself.
        self._latency_children: dict[tuple[str, str, str], Any] = {}
        self.verified_ok = self.verifications.labels("valid", "ok")

    def latency_for(self, endpoint: str, method: str, status: str) -> Any:
        """The latency histogram child for one endpoint, method and status class ("2xx"):
        all finite, so the children are few."""
        key = (endpoint, method, status)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.latency.labels(endpoint, method, status)
        return child


def metrics() -> Metrics:
    """The current app's metrics."""
    return current_app.extensions[_EXT]  # type: ignore[no-any-return]


def render(extra: bytes = b"") -> Response:
    """The Prometheus text format: summed over workers in multiprocess mode; ``extra``
    (more metric families in the same format, e.g. gauges read now) follows."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = metrics().registry
    return Response(generate_latest(registry) + extra, mimetype=CONTENT_TYPE_LATEST)


_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def _observe(response: Response) -> Response:
    started = g.get("request_started")  # set by app.http when the request began
    if started is not None:
        metrics().latency_for(request.endpoint or "unmatched", request.method,
                              _STATUS_CLASSES.get(response.status_code // 100, "other")).observe(
            time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    if _EXT in app.extensions:
        raise RuntimeError("metrics are already set up on this app")
    app.extensions[_EXT] = Metrics(CollectorRegistry(auto_describe=True))
    app.after_request(_observe)
