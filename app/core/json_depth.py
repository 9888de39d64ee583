"""How deep a JSON text nests (issue 16 item 6): the strict verifier's rule, for request
bodies too (one limit for tokens and bodies)."""

from __future__ import annotations

from tessera_verifier.depth import MAX_JSON_DEPTH, nesting_exceeds

__all__ = ["MAX_JSON_DEPTH", "nesting_exceeds"]
