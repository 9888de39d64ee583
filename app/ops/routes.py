"""Health endpoints for load balancers and orchestrators (SPEC §9)."""

from __future__ import annotations

import ipaddress
import logging

import redis
from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .. import state
from ..core.crypto import SealError, constant_time_equal
from ..core.keyring import KeyringUnavailable
from ..errors import Forbidden
from ..extensions import db, redis_store
from ..metrics import render
from ..route_facts import route_facts
from ..security.issuing import signing_ready
from . import gauges
from .schemas import HealthSchema, ReadySchema

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
@route_facts(response=HealthSchema, public=True)
def healthz() -> Response:
    """The process is alive; checks nothing else."""
    return jsonify(status="ok")


@bp.get("/metrics")
@route_facts(response={"type": "string"}, content_type="text/plain", public=True)
def prometheus_metrics() -> Response:
    """Prometheus text format; METRICS_TOKEN bearer, or loopback callers when unset."""
    token = state.settings().metrics_token
    if token is not None:
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not offered or not constant_time_equal(offered, token):
            raise Forbidden("Metrics need the metrics token.")
    elif not _loopback(request.remote_addr):
        raise Forbidden("Metrics are served to loopback callers only.")
    return render(gauges.scrape())


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@bp.get("/readyz")
@route_facts(response=ReadySchema, public=True)
def readyz() -> tuple[Response, int]:
    """Ready to serve: every named check must pass."""
    checks = {"database": _database_ok(), "redis": _redis_status()}
    checks["signing_key"] = _signing_key_status() if checks["database"] == "ok" else "unknown"
    ready = all(status in ("ok", "not_configured") for status in checks.values())
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503


def _database_ok() -> str:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.warning("readyz: database unreachable", exc_info=True)
        db.session.rollback()
        return "down"
    return "ok"


def _signing_key_status() -> str:
    try:
        ready = signing_ready()  # by the rules issuing follows, the sunset included
    except (KeyringUnavailable, SealError):
        return "down"
    return "ok" if ready else "missing"


def _redis_status() -> str:
    client = redis_store.client
    if client is None:
        return "not_configured"
    try:
        client.ping()
    except redis.RedisError:
        log.warning("readyz: redis unreachable")
        return "down"
    return "ok"
