"""RFC 7662 token introspection, for routes that must see a revocation at once.

Offline verification cannot know that a token was logged out a second ago; until
a revocation feed exists, routes marked revocation-sensitive ask Tessera's
``/oauth/introspect`` (as a registered service client with the ``introspect``
scope, ``client_secret_basic``). Answers are cached for ``cache_seconds``
(default 2): that is the longest a revoked token can still pass such a route.
The cache is keyed by the token's SHA-256, never the token, and bounded.
When Tessera cannot be reached the answer is "not active" (fail closed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from typing import Any

__all__ = ["Introspector"]

log = logging.getLogger("tessera_verifier.introspection")


class Introspector:
    """Asks Tessera whether a token is active; answers cached briefly."""

    def __init__(self, endpoint: str, client_id: str, client_secret: str, *,
                 cache_seconds: float = 2.0, timeout: float = 3.0,
                 max_entries: int = 10_000) -> None:
        self.endpoint = endpoint
        quote = urllib.parse.quote
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        self._auth = "Basic " + base64.b64encode(pair.encode()).decode()
        self._ttl = cache_seconds
        self._timeout = timeout
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.calls = 0  # requests sent to Tessera
        self.failures = 0  # unreachable or unusable answers (treated as inactive)

    def introspect(self, token: str) -> dict[str, Any]:
        """Tessera's answer for ``token`` (``{"active": false}`` when it cannot be had)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        answer = self._ask(token)
        with self._lock:
            self._cache[key] = (time.monotonic() + self._ttl, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return answer

    def active(self, token: str) -> bool:
        """Whether Tessera says ``token`` is an active access token right now."""
        return self.introspect(token).get("active") is True

    def _ask(self, token: str) -> dict[str, Any]:
        self.calls += 1
        body = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode()
        request = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "Authorization": self._auth, "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read(1 << 16))
        except (OSError, ValueError) as exc:  # urllib's HTTPError is an OSError
            self.failures += 1
            log.warning("introspection failed (%s): treating the token as inactive",
                        exc.__class__.__name__)
            return {"active": False}
        if not isinstance(answer, dict):
            self.failures += 1
            return {"active": False}
        return answer
