"""Tessera's revocations, pushed to the resource server: a Security Event Token feed.

::

    feed = RevocationFeed("https://auth.example", "svc-...", secret,
                          state_path=Path("/var/lib/notes/revocations.json"))
    feed.start()
    feed.wait_ready(timeout=30)              # readiness: caught up with Tessera
    reason = feed.check(claims, header, raw, sensitive=True)
    if reason: refuse(reason)                # 401 invalid_token

A background thread long-polls Tessera's stream (RFC 8936) with the service
client's credentials, verifies every SET (RFC 8417: ``typ secevent+jwt``, the
signature against Tessera's JWKS, ``iss``, ``aud`` = this client, ``jti``,
``iat``, one event), applies it to a local :class:`~tessera_verifier.denylist.Denylist`,
saves that to ``state_path`` and only then acknowledges it, so a restarted
receiver loads what it had and catches up from its last acknowledgement.
``check`` never calls Tessera: it is a few dict lookups.

- Before the first catch-up every token is refused (``feed_not_ready``): the
  resource server's readiness waits on :meth:`RevocationFeed.ready`.
- When Tessera has not answered for ``stale_after`` seconds (it is unreachable,
  or the stream broke), revocation-sensitive routes follow ``stale_policy``:
  ``"refuse"`` (``feed_stale``) or ``"introspect"`` (ask Tessera per request
  through an :class:`~tessera_verifier.introspection.Introspector`). Other routes
  keep using the denylist as it is. The receiver retries and catches up when
  Tessera is back. ``stale_after`` must exceed Tessera's long-poll time
  (SECURITY_EVENTS_LONG_POLL, 20 s): a held poll is silence too.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .denylist import Denylist
from .introspection import Introspector
from .jwks import JwksCache
from .secevent import SetRejected, verify_set
from .verify import VerifiedToken

__all__ = ["UNAVAILABLE", "RevocationFeed"]

# Reasons that are no fault of the token: the resource server answers 503 for them.
UNAVAILABLE = frozenset({"feed_not_ready", "feed_stale"})

log = logging.getLogger("tessera_verifier.feed")
# A long poll answered empty sooner than this was not held: wait this long before the next.
_QUICK_EMPTY = 0.5


class RevocationFeed:
    """One receiver: its poll thread, its denylist and its readiness."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, *,
                 poll_url: str | None = None, jwks: JwksCache | None = None,
                 state_path: Path | None = None, stale_after: float = 30.0,
                 stale_policy: str = "refuse", introspector: Introspector | None = None,
                 max_events: int = 100, poll_timeout: float = 40.0,
                 clock: Callable[[], float] = time.time) -> None:
        if stale_policy not in ("refuse", "introspect"):
            raise ValueError("stale_policy must be 'refuse' or 'introspect'")
        if stale_policy == "introspect" and introspector is None:
            raise ValueError("stale_policy 'introspect' needs an introspector")
        base = issuer.rstrip("/")
        self.issuer, self.client_id = issuer, client_id
        self._auth = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.poll_url = poll_url or base + "/ssf/poll"
        self.jwks = jwks or JwksCache(base + "/.well-known/jwks.json")
        self.denylist = Denylist(clock)
        self.state_path = state_path
        self.stale_after, self.stale_policy = stale_after, stale_policy
        self.introspector = introspector
        self._max_events, self._timeout, self._clock = max_events, poll_timeout, clock
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_contact = float("-inf")  # monotonic time of Tessera's last answer
        self._acks: list[str] = []
        self._errors: dict[str, dict[str, str]] = {}
        self.stats = {"polls": 0, "poll_failures": 0, "applied": 0, "acknowledged": 0,
                      "rejected": 0, "lag_seconds": 0.0}
        if state_path is not None:
            loaded = self.denylist.load(state_path)
            log.info("revocation feed: %d entries loaded from %s", loaded, state_path)

    # --- the hot path

    def check(self, claims: Mapping[str, Any], header: Mapping[str, Any],
              token: str | None = None, *, sensitive: bool = False) -> str | None:
        """None if the verified token may be used, else a reason code; no request to
        Tessera unless the feed is stale and the route is sensitive with ``introspect``."""
        return self._after(self.denylist.check(claims, header, token), token, sensitive)

    def check_verified(self, verified: VerifiedToken, token: str, *,
                       sensitive: bool = False) -> str | None:
        """``check`` for a token the package's :class:`~tessera_verifier.verifier.Verifier`
        verified (``TesseraAuth`` calls it on every protected request)."""
        reason = self.denylist.decide(
            kid=verified.kid, jti=verified.jti, token_hash=verified.token_hash,
            sid=verified.sid, subject=verified.subject, iat=verified.iat, legacy=verified.legacy)
        return self._after(reason, token, sensitive)

    def _after(self, reason: str | None, token: str | None, sensitive: bool) -> str | None:
        """The denylist's answer, then readiness and the stale policy."""
        if reason is not None:
            return reason
        if not self._caught_up.is_set():
            return "feed_not_ready"
        if sensitive and self.stale():
            if self.stale_policy == "refuse" or token is None:
                return "feed_stale"
            assert self.introspector is not None
            return None if self.introspector.active(token) else "revoked"
        return None

    def ready(self) -> bool:
        """Whether the feed has caught up with Tessera at least once since it started."""
        return self._caught_up.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until caught up (readiness), at most ``timeout`` seconds."""
        return self._caught_up.wait(timeout)

    def stale(self) -> bool:
        """Whether Tessera has not answered a poll for longer than ``stale_after``."""
        return time.monotonic() - self._last_contact > self.stale_after

    def lag(self) -> float:
        """Seconds since Tessera last answered (receiver lag, for metrics)."""
        return time.monotonic() - self._last_contact

    # --- the thread

    def start(self) -> RevocationFeed:
        """Start polling in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tessera-feed", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling (the thread ends with its current poll, at most ``poll_timeout``)."""
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.2
        last_prune = time.monotonic()
        while not self._stop.is_set():
            asked_to_wait = self._caught_up.is_set()  # a long poll (see _poll)
            started = time.monotonic()
            try:
                answer = self._poll()
            except (OSError, ValueError) as exc:  # URLError is an OSError
                self.stats["poll_failures"] += 1
                log.warning("revocation feed: poll failed (%s); retrying in %.1fs",
                            type(exc).__name__, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.2
            self._last_contact = time.monotonic()
            self._apply(answer)
            if asked_to_wait and not answer["sets"] and (
                    time.monotonic() - started < _QUICK_EMPTY):
                # Tessera would not hold this poll (its waiting places are taken, e.g. by
                # this receiver's previous process): poll again shortly, not in a loop.
                self._stop.wait(_QUICK_EMPTY)
            if time.monotonic() - last_prune > 60:
                self.denylist.prune()
                last_prune = time.monotonic()

    def _poll(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ack": self._acks, "maxEvents": self._max_events,
                                # catching up: an empty answer at once says "nothing more"
                                "returnImmediately": not self._caught_up.is_set()}
        if self._errors:
            body["setErrs"] = self._errors
        request = urllib.request.Request(
            self.poll_url, data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": self._auth, "Content-Type": "application/json",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read(8 << 20))
        except urllib.error.HTTPError as exc:
            raise OSError(f"HTTP {exc.code}") from None
        self.stats["polls"] += 1
        self.stats["acknowledged"] += len(self._acks) + len(self._errors)
        self._acks, self._errors = [], {}  # Tessera has them now
        if not isinstance(answer, dict) or not isinstance(answer.get("sets"), dict):
            raise ValueError("not an RFC 8936 poll answer")  # noqa: TRY004 - retried as a failed poll
        return answer

    def _apply(self, answer: dict[str, Any]) -> None:
        acks: list[str] = []
        for jti, token in answer["sets"].items():
            try:
                entry, iat = verify_set(token, self.jwks, issuer=self.issuer,
                                        audience=self.client_id, now=self._clock())
            except SetRejected as exc:
                self.stats["rejected"] += 1
                log.warning("revocation feed: SET %s refused (%s)", str(jti)[:80], exc.reason)
                self._errors[str(jti)[:128]] = {"err": exc.err, "description": exc.reason}
                continue
            self.denylist.add(*entry)
            self.stats["applied"] += 1
            self.stats["lag_seconds"] = max(0.0, self._clock() - iat)
            acks.append(jti)
        if acks and self.state_path is not None:
            self.denylist.save(self.state_path)  # before the ack: a crash redelivers
        self._acks.extend(acks)
        if not answer.get("moreAvailable") and not self._caught_up.is_set():
            log.info("revocation feed: caught up (%d entries)", len(self.denylist))
            self._caught_up.set()
