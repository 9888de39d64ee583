"""Keyset paging of users and the audit log stays flat however deep the page (issue 19,
acceptance 3): 10,000 users and 100,000 audit rows, every page read, each row exactly once.

Not a timed test: it prints the median time of a page near the start, the middle and the
end of each listing (and, for contrast, what OFFSET paging costs at the same depths) and
writes bench/results/paging.json. SQLite by default; BENCH_DATABASE_URL names a
PostgreSQL to use instead (its tables are emptied first).

    .venv/bin/python bench/paging.py
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade
from sqlalchemy import insert, select, text

from app import create_app
from app.core import audit as audit_service
from app.core import users as user_service
from app.core.passwords import hash_password
from app.extensions import db
from app.models import AuditEvent, User

USERS = int(os.environ.get("BENCH_USERS", "10000"))
AUDIT_ROWS = int(os.environ.get("BENCH_AUDIT_ROWS", "100000"))
USER_PAGE, AUDIT_PAGE = 50, 100
SAMPLE = 10  # pages timed at each depth
KEK = base64.urlsafe_b64encode(b"p" * 32).decode()


def _fill() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    digest = hash_password("bench password 0123")  # one hash: argon2 is not what is measured
    for start in range(0, USERS, 5000):
        db.session.execute(insert(User), [
            {"username": f"user{i:06d}", "password_hash": digest, "roles": [], "disabled": False,
             "created_at": now, "password_changed_at": now, "must_change_password": False}
            for i in range(start, min(start + 5000, USERS))])
    for start in range(0, AUDIT_ROWS, 10000):
        db.session.execute(insert(AuditEvent), [
            {"at": now + timedelta(seconds=i), "event": "LOGIN_FAILURE", "user_id": i % USERS + 1,
             "result": "failure", "details": {}}
            for i in range(start, min(start + 10000, AUDIT_ROWS))])
    db.session.commit()


def _walk(fetch: Callable[[int | None], list[Any]], cursor_of: Callable[[Any], int]
          ) -> tuple[list[int], list[float]]:
    """Every page from the first; the ids seen and each page's time in seconds."""
    ids: list[int] = []
    times: list[float] = []
    cursor: int | None = None
    while True:
        started = time.perf_counter()
        rows = fetch(cursor)
        times.append(time.perf_counter() - started)
        if not rows:
            return ids, times
        ids += [cursor_of(r) for r in rows]
        cursor = cursor_of(rows[-1])


def _depths(times: list[float]) -> dict[str, float]:
    middle = len(times) // 2
    return {name: round(statistics.median(part) * 1000, 3) for name, part in (
        ("first_ms", times[:SAMPLE]), ("middle_ms", times[middle:middle + SAMPLE]),
        ("last_ms", times[-SAMPLE - 1:-1]))}


def _offset_times(model: Any, order: Any, pages: int, size: int) -> dict[str, float]:
    """What OFFSET paging costs at the same depths (for contrast only)."""
    def at(page: int) -> float:
        samples = []
        for p in range(page, page + SAMPLE):
            started = time.perf_counter()
            list(db.session.scalars(select(model).order_by(order).limit(size).offset(p * size)))
            samples.append(time.perf_counter() - started)
        return round(statistics.median(samples) * 1000, 3)
    return {"first_ms": at(0), "middle_ms": at(pages // 2), "last_ms": at(pages - SAMPLE - 1)}


def main() -> None:
    url = os.environ.get("BENCH_DATABASE_URL")
    tmp = tempfile.mkdtemp(prefix="tessera-paging-")
    app = create_app({"DATABASE_URL": url or f"sqlite:///{tmp}/paging.db",
                      "KEY_ENCRYPTION_KEY": KEK, "ISSUER": "http://localhost"},
                     instance_path=tmp)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        if url:
            db.session.execute(text("TRUNCATE users, audit_events RESTART IDENTITY CASCADE"))
            db.session.commit()
        _fill()
        user_ids, user_times = _walk(
            lambda after: user_service.page_users(db.session(), after_id=after, limit=USER_PAGE),
            lambda u: u.id)
        audit_ids, audit_times = _walk(
            lambda before: audit_service.query(db.session(), before_id=before, limit=AUDIT_PAGE),
            lambda e: e.id)
        assert user_ids == sorted(set(user_ids)) and len(user_ids) == USERS, "users: each once"
        assert audit_ids == sorted(set(audit_ids), reverse=True) and len(audit_ids) == AUDIT_ROWS
        result = {
            "database": "PostgreSQL" if url else "SQLite",
            "users": {"rows": USERS, "page": USER_PAGE, "pages": len(user_times) - 1,
                      "keyset": _depths(user_times),
                      "offset": _offset_times(User, User.id, len(user_times) - 1, USER_PAGE)},
            "audit": {"rows": AUDIT_ROWS, "page": AUDIT_PAGE, "pages": len(audit_times) - 1,
                      "keyset": _depths(audit_times),
                      "offset": _offset_times(AuditEvent, AuditEvent.id.desc(),
                                              len(audit_times) - 1, AUDIT_PAGE)},
        }
        db.engine.dispose()
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "paging.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
