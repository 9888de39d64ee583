"""The declaration of every setting: :class:`Settings`, one field per setting with its
default, its parser and its description (``config.load_settings`` reads them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from . import config_parsers as parse
from .core.redis_connections import RedisTarget
from .logs import FORMATS as LOG_FORMATS
from .logs import LEVELS as LOG_LEVELS

__all__ = ["MIGRATION_PHASES", "SIGNING_ALGORITHMS", "Settings"]

MIGRATION_PHASES = ("legacy", "dual", "asymmetric")
SIGNING_ALGORITHMS = ("ES256", "RS256")


def _setting(default: Any, parse: Callable[[Any], Any], doc: str, *, secret: bool = False) -> Any:
    # Secrets are left out of repr() so that logging the settings cannot leak them.
    return field(
        default=None, repr=not secret, metadata={"default": default, "parse": parse, "doc": doc}
    )


@dataclass(frozen=True)
class Settings:
    """The validated settings of one app. Field ``foo_bar`` is setting ``FOO_BAR``."""

    # Where things live
    database_url: str | None = _setting(
        None,
        parse.optional_text,
        "SQLAlchemy URL; unset means SQLite in `instance/tessera.db`.",
        secret=True,  # a PostgreSQL URL usually carries the password
    )
    redis_url: str | None = _setting(
        None,
        parse.optional_redis_url,
        "Redis URL for the denylist and rate-limit counters; unset keeps both in the database. "
        "`redis://`, `rediss://` (TLS; `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, "
        "`ssl_cert_reqs` as query arguments) or `unix://` (a socket path).",
        secret=True,  # it may carry the password
    )
    redis_sentinels: tuple[str, ...] = _setting(
        (),
        parse.host_port_list,
        "Redis Sentinels as a JSON list of `host:port`; set, the primary is found through "
        "them and `REDIS_URL` gives only the scheme, credentials, db and TLS options.",
    )
    redis_sentinel_service: str = _setting(
        "mymaster", parse.text, "The Sentinel service (master) name of Tessera's Redis."
    )
    redis_sentinel_password: str | None = _setting(
        None,
        parse.optional_text,
        "Password of the Sentinels themselves (their `requirepass`); unset: none.",
        secret=True,
    )
    bind: str = _setting(
        "127.0.0.1:8000", parse.bind,
        "Where gunicorn listens (`host:port` or `unix:PATH`); beyond loopback the "
        "production guard rails apply.",
    )
    issuer: str = _setting(
        "http://127.0.0.1:8000", parse.text, "`iss` of every token and the service's base URL."
    )
    audience: str | None = _setting(
        None, parse.optional_text, "`aud` of access tokens; unset means ISSUER + `/api`."
    )
    # Tokens (SPEC §3)
    access_token_ttl: timedelta = _setting(900, parse.seconds, "Access token lifetime, seconds.")
    clock_skew_leeway: timedelta = _setting(
        30, parse.seconds_or_zero, "Leeway for `exp`, `nbf`, `iat`, seconds."
    )
    token_max_bytes: int = _setting(8192, parse.positive_int, "Largest token accepted, bytes.")
    signing_algorithm: str = _setting(
        "ES256", parse.one_of(*SIGNING_ALGORITHMS), "Algorithm of new asymmetric keys."
    )
    # Keyring (SPEC §4)
    key_encryption_key: bytes | None = _setting(
        None,
        parse.optional_kek,
        "base64url 32-byte key that encrypts private keys and TOTP secrets at rest, or a "
        "JSON list of such keys (the first seals, every one opens: KEK rotation); unset with "
        "the embedded database means one generated into `instance/` (0600).",
        secret=True,
    )
    key_rotation_interval: timedelta = _setting(
        30 * 86400, parse.seconds, "Age of the active key at which `keys rotate --if-due` rotates."
    )
    keyring_refresh: timedelta = _setting(
        5, parse.seconds, "How often a worker reloads the keyring from the database, seconds."
    )
    keyring_reload_cooldown: timedelta = _setting(
        1, parse.seconds_or_zero, "Least time between reloads caused by unknown kids, seconds."
    )
    jwks_max_age: int = _setting(300, parse.non_negative_int, "`max-age` of the JWKS, seconds.")
    metadata_max_age: int = _setting(
        60,
        parse.non_negative_int,
        "`max-age` of the RFC 8414 metadata, which carries the migration phase "
        "(`tessera_migration`): the longest a verifier may follow an old phase, seconds.",
    )
    # HS256 migration (SPEC §4)
    migration_phase: str | None = _setting(
        None,
        parse.optional_one_of(*MIGRATION_PHASES),
        "Initial phase (`legacy`, `dual`, `asymmetric`) until one is set through the CLI "
        "or admin API; unset means `dual` with legacy secrets, else `asymmetric`.",
    )
    legacy_hs256_secrets: tuple[str, ...] = _setting(
        (),
        parse.text_list,
        "Legacy HS256 secrets, JSON list, oldest last; verify-only.",
        secret=True,
    )
    legacy_accept_until: datetime | None = _setting(
        None, parse.optional_timestamp, "ISO 8601 time after which HS256 tokens are refused."
    )
    legacy_max_lifetime: timedelta = _setting(
        30 * 86400,
        parse.seconds,
        "Longest a legacy HS256 token may still live: one whose `exp` is further away is "
        "refused; revocations that cannot see a token's `exp` last this long, seconds.",
    )
    legacy_subject_claim: str = _setting("sub", parse.text,
                                         "Claim naming the user in legacy tokens.")
    legacy_subject_lookup: str = _setting(
        "id",
        parse.one_of("id", "username"),
        "Whether that claim holds a user id or a username (matched exactly, as stored).",
    )
    legacy_issuer: str | None = _setting(None, parse.optional_text,
                                         "Required `iss` of legacy tokens.")
    legacy_audience: str | None = _setting(
        None, parse.optional_text, "Required `aud` of legacy tokens."
    )
    # Sessions (SPEC §5)
    session_max_age: timedelta = _setting(
        30 * 86400, parse.seconds, "Absolute session lifetime, seconds."
    )
    session_idle_timeout: timedelta = _setting(
        7 * 86400, parse.seconds, "Session ends after this long unused, seconds."
    )
    refresh_reuse_grace: timedelta = _setting(
        10, parse.seconds_or_zero,
        "Window in which the previous refresh token is not reuse, seconds."
    )
    cookie_secure: bool = _setting(
        True, parse.boolean, "`false` (development only) drops `Secure` and the cookie prefixes."
    )
    registration_enabled: bool = _setting(False, parse.boolean, "Allow `POST /auth/register`.")
    # Revocation (SPEC §6)
    revocation_fail_mode: str = _setting(
        "open",
        parse.one_of("open", "closed"),
        "`open`: fall back to the database when Redis is down or may have lost revocations "
        "(until rebuilt); `closed`: answer 503.",
    )
    revocation_mirror: bool = _setting(
        True,
        parse.boolean,
        "Keep a per-worker copy of the Redis denylist, invalidated by Redis client tracking, "
        "so that checks need no round trip (see Speed); `false`: one `MGET` per check.",
    )
    revocation_trust_recheck: timedelta = _setting(
        1,
        parse.seconds,
        "How often each worker re-reads the database's word on whether Redis holds every "
        "revocation, and asks Redis who it is (INFO), seconds.",
    )
    revocation_redis_wait_replicas: int = _setting(
        0,
        parse.non_negative_int,
        "Replicas that must acknowledge every revocation (Redis `WAIT`); one not acknowledged "
        "in time makes Redis untrusted until it is rebuilt. 0: no wait.",
    )
    revocation_redis_wait_timeout: timedelta = _setting(
        0.5, parse.fractional_seconds, "How long a revocation waits for those replicas, seconds."
    )
    # MFA (SPEC §7)
    mfa_token_ttl: timedelta = _setting(300, parse.seconds,
                                        "Lifetime of the login MFA token, seconds.")
    mfa_issuer: str = _setting(
        "Tessera", parse.text, "Issuer label authenticator apps show next to the account name."
    )
    # Passkeys (WebAuthn Level 3)
    webauthn_rp_id: str | None = _setting(
        None, parse.optional_text,
        "WebAuthn relying party id (a domain); unset means the host of `ISSUER`.",
    )
    webauthn_origin: str | None = _setting(
        None, parse.optional_text,
        "The one origin passkey ceremonies may come from; unset means `ISSUER`'s "
        "scheme, host and port.",
    )
    webauthn_timeout: timedelta = _setting(
        120, parse.seconds,
        "How long a passkey ceremony's challenge lives (and the browser waits), seconds.",
    )
    # Service clients (RFC 7662, RFC 7009)
    client_secret_overlap: timedelta = _setting(
        86400, parse.seconds_or_zero,
        "How long a service client's previous secret keeps working after a rotation, seconds.",
    )
    # Security events (RFC 8417 SETs polled per RFC 8936; app/events)
    security_events_long_poll: timedelta = _setting(
        20, parse.seconds,
        "Longest a stream poll that may wait (`returnImmediately: false`) is held open "
        "waiting for an event, seconds.",
    )
    security_events_recheck: timedelta = _setting(
        0.5, parse.fractional_seconds,
        "How often a waiting poll re-reads the database whatever it was told: the delivery "
        "bound to a receiver waiting on another worker without Redis, seconds.",
    )
    security_events_max_batch: int = _setting(
        100, parse.positive_int, "Most SETs one poll returns (a receiver's `maxEvents` is capped)."
    )
    # Rate limits (SPEC §9): flask-limiter rate strings
    ratelimit_login_per_ip: str = _setting(
        "10/minute", parse.rate_limit, "Failed logins per client address."
    )
    ratelimit_login_per_username: str = _setting(
        "10/minute", parse.rate_limit, "Failed logins per username (any address)."
    )
    ratelimit_mfa: str = _setting(
        "5/minute", parse.rate_limit,
        "MFA code attempts per user and per address (verify, step-up)."
    )
    ratelimit_refresh: str = _setting("30/minute", parse.rate_limit, "Refreshes per address.")
    ratelimit_exchange: str = _setting(
        "10/minute", parse.rate_limit, "Legacy exchanges and registrations per address."
    )
    ratelimit_events: str = _setting(
        "600/minute", parse.rate_limit, "Security-event stream calls (poll, stream) per address."
    )
    # Operations
    metrics_token: str | None = _setting(
        None,
        parse.optional_text,
        "Bearer token that may read `/metrics`; unset means loopback callers only.",
        secret=True,
    )
    log_level: str = _setting(
        "INFO", parse.one_of(*LOG_LEVELS),
        "Least level logged (stdout), for the app and gunicorn.",
    )
    log_format: str = _setting(
        "json", parse.one_of(*LOG_FORMATS),
        "`json`: one JSON object per line (time, level, logger, message, request id, audit "
        "fields); `text`: plain lines for a terminal.",
    )
    # HTTP
    max_content_length: int = _setting(65536, parse.positive_int, "Largest request body, bytes.")
    trusted_proxies: int = _setting(
        0, parse.non_negative_int, "Number of proxies whose `X-Forwarded-For` is believed."
    )

    @property
    def redis_target(self) -> RedisTarget | None:
        """Where Redis is (URL, Sentinels), or None when it is not configured."""
        if self.redis_url is None:
            return None
        return RedisTarget(self.redis_url, self.redis_sentinels, self.redis_sentinel_service,
                           self.redis_sentinel_password)

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying party id: WEBAUTHN_RP_ID, else ISSUER's host."""
        return self.webauthn_rp_id or (urlsplit(self.issuer).hostname or "localhost")

    @property
    def rp_origin(self) -> str:
        """The origin passkey ceremonies must come from: WEBAUTHN_ORIGIN, else ISSUER's."""
        if self.webauthn_origin:
            return self.webauthn_origin.rstrip("/")
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def access_audience(self) -> str:
        """The audience of access tokens (SPEC §3: ISSUER + /api unless set)."""
        return self.audience or self.issuer.rstrip("/") + "/api"
