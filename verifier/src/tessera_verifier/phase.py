"""Tessera's migration phase, as published in its RFC 8414 metadata (``tessera_migration``).

Tessera's metadata carries::

    "tessera_migration": {"phase": "dual", "legacy_accepted": true, "legacy_sunset": 1767225600}

``phase`` is ``legacy``, ``dual`` or ``asymmetric``; ``legacy_sunset`` is the
epoch second after which no HS256 token is accepted (or null). A verifier
following it accepts legacy HS256 tokens only while the phase is ``legacy`` or
``dual`` **and** before the sunset, by its own clock: the sunset needs no
refresh at all, and a phase switched on Tessera reaches every verifier within
Tessera's ``KEYRING_REFRESH`` plus the metadata's ``max-age`` (or this
follower's ``max_refresh`` when smaller).

Failing safe: until the metadata has been read once, or when it lacks the
member, legacy tokens are refused. When Tessera becomes unreachable later,
the last phase read is kept (and the sunset still applies).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fetch import CachedDocument, DocumentUnavailable, Reply, http_get

__all__ = ["MigrationState", "PhaseFollower", "Metadata", "parse_metadata"]

PHASES = ("legacy", "dual", "asymmetric")


@dataclass(frozen=True)
class MigrationState:
    """The published phase and sunset."""

    phase: str
    legacy_sunset: float | None

    def legacy_allowed_at(self, now: float) -> bool:
        """Whether an HS256 token may be accepted at ``now`` (epoch seconds)."""
        return self.phase in ("legacy", "dual") and (
            self.legacy_sunset is None or now < self.legacy_sunset)


REFUSE_LEGACY = MigrationState("asymmetric", None)


@dataclass(frozen=True)
class Metadata:
    """The members of Tessera's metadata a verifier uses."""

    issuer: str | None
    jwks_uri: str | None
    introspection_endpoint: str | None
    migration: MigrationState


def parse_metadata(document: Any) -> Metadata:
    """Read the RFC 8414 document; a missing or malformed migration member refuses legacy."""
    if not isinstance(document, dict):
        raise TypeError("metadata is not a JSON object")

    def text(name: str) -> str | None:
        value = document.get(name)
        return value if isinstance(value, str) else None

    member = document.get("tessera_migration")
    migration = REFUSE_LEGACY
    if isinstance(member, dict) and member.get("phase") in PHASES:
        sunset = member.get("legacy_sunset")
        if sunset is None or (isinstance(sunset, (int, float)) and not isinstance(sunset, bool)):
            migration = MigrationState(member["phase"],
                                       float(sunset) if sunset is not None else None)
    return Metadata(text("issuer"), text("jwks_uri"), text("introspection_endpoint"), migration)


class PhaseFollower:
    """Follows ``tessera_migration`` in the metadata at ``metadata_url``."""

    def __init__(self, metadata_url: str, *, min_refresh: float = 1.0, max_refresh: float = 60.0,
                 timeout: float = 3.0, background: bool = True,
                 get: Callable[[str, dict[str, str], float], Reply] = http_get,
                 clock: Callable[[], float] = time.time) -> None:
        self.document = CachedDocument(metadata_url, parse_metadata, min_refresh=min_refresh,
                                       max_refresh=max_refresh, timeout=timeout,
                                       background=background, get=get)
        self._clock = clock

    def metadata(self) -> Metadata:
        """The last metadata read (fetched on first use)."""
        return self.document.value()  # type: ignore[no-any-return]

    def state(self) -> MigrationState:
        """The phase to follow now; legacy refused while the metadata was never read."""
        try:
            return self.metadata().migration
        except DocumentUnavailable:
            return REFUSE_LEGACY

    def legacy_allowed(self) -> bool:
        """Whether HS256 tokens may be accepted right now."""
        return self.state().legacy_allowed_at(self._clock())

    def close(self) -> None:
        """Stop the background refresh."""
        self.document.close()
