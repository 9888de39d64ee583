"""A JSON document fetched over HTTP and kept fresh: Cache-Control, ETag, last good copy.

Both the JWKS and the RFC 8414 metadata (which carries the migration phase) are
held by a :class:`CachedDocument`. It honours ``Cache-Control: max-age`` (clamped
to ``[min_refresh, max_refresh]``; ``no-store``/``no-cache`` count as the minimum),
revalidates with ``If-None-Match`` (a 304 keeps the body and restarts its life),
refreshes in a background thread before the copy expires, and keeps serving the
last good copy when the server cannot be reached, saying so in the log and in
:attr:`CachedDocument.stats`.

The HTTP client is the standard library's ``urllib``: two GETs and one POST per
refresh interval need no connection pool, and a resource server installing the
package gets no transitive dependency from it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CachedDocument", "DocumentUnavailable", "FetchStats", "http_get"]

log = logging.getLogger("tessera_verifier.fetch")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_MAX_BODY = 1 << 20  # a JWKS or metadata document larger than 1 MiB is refused


class DocumentUnavailable(Exception):
    """No copy of the document has ever been fetched."""


@dataclass(frozen=True)
class Reply:
    """What one GET answered."""

    status: int
    headers: dict[str, str]
    body: bytes


def http_get(url: str, headers: dict[str, str], timeout: float) -> Reply:
    """GET ``url``; a 304 or any other HTTP status is a :class:`Reply`, not an exception."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()},
                         response.read(_MAX_BODY + 1))
    except urllib.error.HTTPError as exc:  # urllib raises for 304 and for every 4xx/5xx
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, b"")


def max_age(cache_control: str | None) -> int | None:
    """``max-age`` of a Cache-Control value, 0 for no-store/no-cache, None when absent."""
    if not cache_control:
        return None
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0
    found = _MAX_AGE.search(cache_control)
    return int(found.group(1)) if found else None


@dataclass
class FetchStats:
    """Counters for metrics: export them as you like (they only ever grow)."""

    fetches: int = 0  # requests sent
    not_modified: int = 0  # 304 answers
    updates: int = 0  # new bodies accepted
    failures: int = 0  # unreachable, non-200, or an unusable body
    stale_serves: int = 0  # refreshes that failed while an old copy kept being served


class CachedDocument:
    """One JSON document kept fresh; ``parse`` turns the JSON into the value served."""

    def __init__(self, url: str, parse: Callable[[Any], Any], *, min_refresh: float = 1.0,
                 max_refresh: float = 300.0, default_max_age: float = 60.0,
                 timeout: float = 3.0, background: bool = True,
                 get: Callable[[str, dict[str, str], float], Reply] = http_get,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._parse = parse
        self._min, self._max, self._default = min_refresh, max_refresh, default_max_age
        self._timeout = timeout
        self._get = get
        self._clock = clock
        self._lock = threading.Lock()  # one fetch at a time (single flight)
        self._value: Any = None
        self._have = False
        self._etag: str | None = None
        self._expires_at = 0.0
        self._fetched_at = 0.0
        self.stale = False  # the last refresh failed and an old copy is being served
        self.stats = FetchStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._background = background

    # --- reading

    def value(self) -> Any:
        """The current copy; fetched now if none yet, or if it expired and no thread refreshes."""
        now = self._clock()
        # Never fetched: try at once, but after a failure at most once per min_refresh, so
        # that a Tessera down at start-up is not asked again by every request.
        if (not self._have and now >= self._expires_at) or (
                self._have and not self._background and now >= self._expires_at):
            self.refresh()
        if not self._have:
            raise DocumentUnavailable(self.url)
        self._start_thread()
        return self._value

    @property
    def age(self) -> float:
        """Seconds since the copy was last confirmed by the server."""
        return self._clock() - self._fetched_at if self._have else float("inf")

    # --- refreshing

    def refresh(self) -> bool:
        """Fetch (or revalidate) now, single-flight; True when the server answered usefully."""
        with self._lock:
            return self._refresh_locked()

    def refresh_if_idle(self, since: float) -> bool:
        """Refresh unless another thread did so after ``since`` (monotonic): the second of
        two concurrent callers waits for the first fetch and reuses it."""
        with self._lock:
            if self._fetched_at > since:
                return True
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        headers = {"If-None-Match": self._etag} if self._etag and self._have else {}
        self.stats.fetches += 1
        try:
            reply = self._get(self.url, headers, self._timeout)
            if reply.status == 304 and self._have:
                self.stats.not_modified += 1
            elif reply.status == 200 and len(reply.body) <= _MAX_BODY:
                self._value = self._parse(json.loads(reply.body))
                self._have = True
                self._etag = reply.headers.get("etag")
                self.stats.updates += 1
            else:
                raise ValueError(f"HTTP {reply.status}")
        except Exception as exc:  # noqa: BLE001 -- any failure keeps the last good copy
            self.stats.failures += 1
            self._expires_at = self._clock() + self._min  # try again soon, not in a loop
            if self._have:
                self.stats.stale_serves += 1
                self.stale = True
                log.warning("cannot refresh %s (%s): serving the copy from %.0f s ago",
                            self.url, exc.__class__.__name__, self.age)
            else:
                log.error("cannot fetch %s (%s): no copy to serve", self.url,
                          exc.__class__.__name__)
            return False
        now = self._clock()
        if self.stale:
            log.info("%s reachable again", self.url)
        self.stale = False
        self._fetched_at = now
        age = max_age(reply.headers.get("cache-control"))
        lifetime = self._default if age is None else float(age)
        self._expires_at = now + min(self._max, max(self._min, lifetime))
        return True

    # --- the background thread

    def _start_thread(self) -> None:
        if not self._background or self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"tessera-verifier-refresh {self.url}")
                self._thread.start()

    def _run(self) -> None:
        # Refresh at 80 % of the copy's life, so that requests never wait for a fetch.
        while not self._stop.is_set():
            life = self._expires_at - self._fetched_at if not self.stale else self._min
            due = (self._expires_at - 0.2 * life) if not self.stale else self._expires_at
            wait = max(0.05, due - self._clock())
            if self._stop.wait(wait):
                return
            self.refresh()

    def close(self) -> None:
        """Stop the background thread (tests; a process exiting needs nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
