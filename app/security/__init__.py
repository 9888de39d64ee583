"""The Flask side of tokens: the per-app keyring, request authentication, guards.

The rules live in ``app.core`` and the strict verifier (``tessera_verifier``);
this package feeds them the settings, the database and the request. A request
goes one way: ``reading`` (the token text) → ``authentication`` (verified
token and principal from ``principals``, revocation from ``revocation``) →
the principal on ``g``. ``context`` holds the per-app keyring, policy and
cache; ``csrf`` the double-submit check. No module here imports this facade.
"""

from __future__ import annotations

from .authentication import authenticate, current_principal, inspect_access_token
from .context import init_app, keyring, snapshot, token_policy
from .csrf import check_csrf
from .principal import Principal

__all__ = [
    "Principal",
    "authenticate",
    "check_csrf",
    "current_principal",
    "init_app",
    "inspect_access_token",
    "keyring",
    "snapshot",
    "token_policy",
]
