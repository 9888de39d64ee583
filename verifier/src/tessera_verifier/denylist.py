"""Tessera's revocations as a resource server holds them, keyed as Tessera keys its own.

The feed (:mod:`tessera_verifier.feed`) fills a :class:`Denylist` from Tessera's
Security Event Tokens; :meth:`Denylist.check` answers for a verified token with
Tessera's own rules (SPEC §6) and reason codes, from memory: a few dict lookups,
however many entries it holds.

- ``kid``: every token the key signed (``key_revoked``);
- ``jti`` (or, for a legacy token without one, its SHA-256): that token
  (``token_revoked``);
- ``sid``: every token of the session (``session_revoked``);
- ``user``: the user's tokens issued before the cutoff second (``user_revoked``);
  a token with a session from the cutoff's own second passes unless its
  session was revoked too, one without a session or ``iat`` is refused;
- ``legacyuser``: the user's HS256 tokens issued up to the cutoff (``legacy_cutoff``).

Every entry carries the time after which nothing it revokes can be valid; it is
ignored after that and pruned.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "Denylist"]

KINDS = ("jti", "tokenhash", "sid", "user", "legacyuser", "kid")
_REASONS = {"jti": "token_revoked", "tokenhash": "token_revoked", "sid": "session_revoked",
            "user": "user_revoked", "kid": "key_revoked", "legacyuser": "legacy_cutoff"}
_CUTOFF_KINDS = frozenset({"user", "legacyuser"})


class Denylist:
    """Revocations by kind: value -> (cutoff second or 0, forget-after epoch seconds).

    One writer (the feed's thread) and any number of readers: readers only ``get``,
    and a write replaces one value, which CPython does atomically.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, dict[str, tuple[int, float]]] = {kind: {} for kind in KINDS}

    def __len__(self) -> int:
        return sum(len(values) for values in self._entries.values())

    def add(self, kind: str, value: str, until: float, cutoff: int = 0) -> None:
        """Record a revocation, keeping the later cutoff and the longer life (as Tessera)."""
        values = self._entries[kind]
        old = values.get(value)
        if old is not None:
            cutoff, until = max(cutoff, old[0]), max(until, old[1])
        values[value] = (cutoff, until)

    def _live(self, kind: str, value: Any, now: float) -> tuple[int, float] | None:
        if not isinstance(value, str):
            return None
        found = self._entries[kind].get(value)
        return found if found is not None and found[1] > now else None

    def check(self, claims: Mapping[str, Any], header: Mapping[str, Any],
              token: str | None = None) -> str | None:
        """None if nothing revokes this verified token, else Tessera's reason code."""
        jti = claims.get("jti")
        token_hash = None
        if jti is None and token is not None and self._entries["tokenhash"]:
            token_hash = hashlib.sha256(token.encode()).hexdigest()
        return self.decide(kid=header.get("kid"), jti=jti, token_hash=token_hash,
                           sid=claims.get("sid"), subject=claims.get("sub"),
                           iat=claims.get("iat"), legacy=header.get("alg") == "HS256")

    def decide(self, *, kid: Any, jti: Any, token_hash: Any, sid: Any, subject: Any, iat: Any,
               legacy: bool) -> str | None:
        """``check`` on a token's parts (the verifier's ``VerifiedToken`` has them all)."""
        now = self._clock()
        for kind, value in (("kid", kid), ("jti", jti), ("tokenhash", token_hash),
                            ("sid", sid)):
            if value is not None and self._live(kind, value, now):
                return _REASONS[kind]
        for kind in ("user", "legacyuser") if legacy else ("user",):
            found = self._live(kind, subject, now)
            if found is not None and _before_cutoff(iat, bool(sid) and not legacy, found[0]):
                return _REASONS[kind]
        return None

    def prune(self) -> int:
        """Forget entries whose revoked tokens have all expired; returns how many."""
        now = self._clock()
        removed = 0
        for values in self._entries.values():
            for value in [v for v, (_, until) in values.items() if until <= now]:
                del values[value]
                removed += 1
        return removed

    # --- persistence: a restarted receiver starts from what it had acknowledged

    def save(self, path: Path) -> None:
        """Write every entry to ``path`` atomically (a crash leaves the old file)."""
        body = json.dumps({"version": 1, "entries": self._entries}, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, path: Path) -> int:
        """Read entries saved by :meth:`save` (none if the file is absent); how many."""
        if not path.exists():
            return 0
        saved = json.loads(path.read_text())
        for kind, values in saved.get("entries", {}).items():
            if kind in self._entries:
                for value, (cutoff, until) in values.items():
                    self.add(kind, value, float(until), int(cutoff))
        return len(self)


def _before_cutoff(iat: Any, has_sid: bool, cutoff_second: int) -> bool:
    """Tessera's revoke-all boundary (SPEC §6): a token with a session from the cutoff's
    own second is decided by its session; without ``iat`` it counts as before."""
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        return True
    return iat < cutoff_second if has_sid else iat <= cutoff_second
