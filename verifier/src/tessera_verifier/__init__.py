"""Strict verification of Tessera's access tokens (Tessera's SPEC §3), Flask-free.

The public surface::

    verify_compact(token, keys, policy, now)  -> VerifiedToken, or TokenRejected(reason)
    TokenPolicy, TokenProfile, ACCESS_PROFILE  what a token must satisfy (claims)
    KeySet, KeySource, VerifyingKey           where keys come from (protocols)
    Key, StaticKeySet, key_from_jwk           ready-made keys and key sets
    HeaderCache, check_use                    for callers that cache verified tokens

Modules: ``errors`` (the reason codes), ``jose`` (compact form, header, key,
signature), ``claims`` (claim rules), ``keys`` (keys and key sets),
``verify`` (the steps in order), ``depth`` (JSON nesting).
"""

from __future__ import annotations

from .claims import (
    ACCESS_PROFILE,
    ACCESS_TOKEN_TYPES,
    TokenPolicy,
    TokenProfile,
    user_id_from_subject,
)
from .errors import REASONS, TokenRejected
from .keys import (
    Key,
    KeySet,
    KeySource,
    StaticKeySet,
    VerifyingKey,
    es256_verifier,
    hs256_verifier,
    key_from_jwk,
    rs256_verifier,
)
from .verify import HeaderCache, VerifiedToken, check_times, check_use, verify_compact

__all__ = [
    "ACCESS_PROFILE",
    "ACCESS_TOKEN_TYPES",
    "REASONS",
    "HeaderCache",
    "Key",
    "KeySet",
    "KeySource",
    "StaticKeySet",
    "TokenPolicy",
    "TokenProfile",
    "TokenRejected",
    "VerifiedToken",
    "VerifyingKey",
    "check_times",
    "check_use",
    "es256_verifier",
    "hs256_verifier",
    "key_from_jwk",
    "rs256_verifier",
    "user_id_from_subject",
    "verify_compact",
]
