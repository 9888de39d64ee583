"""Settings: names, defaults, parsing and validation, in one place.

Every setting is a field of :class:`Settings` with its default, its parser and
its description given once (the README's table lists the same names; a test
keeps the two in step). Values come, in this order, from the defaults here,
``instance/config.py``, ``TESSERA_<NAME>`` environment variables (plus the
usual ``DATABASE_URL`` and ``REDIS_URL``) and the mapping given to
``create_app``. :func:`load_settings` turns that raw mapping into a frozen,
typed :class:`Settings` or stops start-up with a :class:`ConfigError` naming
the bad key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .core.crypto import Kek
from .core.redis_connections import RedisTarget
from .logs import FORMATS as LOG_FORMATS
from .logs import LEVELS as LOG_LEVELS

__all__ = ["ConfigError", "Settings", "load_settings", "setting_default", "setting_docs"]

MIGRATION_PHASES = ("legacy", "dual", "asymmetric")
SIGNING_ALGORITHMS = ("ES256", "RS256")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


# --- parsers: each takes the raw value and returns the typed one or raises ValueError


def _integer(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected a whole number, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw.strip())
    raise ValueError(f"expected a whole number, got {raw!r}")


def _positive_int(raw: Any) -> int:
    value = _integer(raw)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _non_negative_int(raw: Any) -> int:
    value = _integer(raw)
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def _seconds(raw: Any) -> timedelta:
    return timedelta(seconds=_positive_int(raw))


def _seconds_or_zero(raw: Any) -> timedelta:
    return timedelta(seconds=_non_negative_int(raw))


def _fractional_seconds(raw: Any) -> timedelta:
    """A positive number of seconds, decimals allowed (``0.5``)."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a number of seconds, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    if not 0 < value < 86400:
        raise ValueError(f"must be more than 0 and less than a day, got {raw!r}")
    return timedelta(seconds=value)


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _optional_text(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError(f"expected text, got {type(raw).__name__}")
    return raw


def _text(raw: Any) -> str:
    value = _optional_text(raw)
    if value is None:
        raise ValueError("must not be empty")
    return value


def _text_list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("expected a JSON list of strings") from None
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) and v for v in raw):
        raise ValueError("expected a list of non-empty strings")
    return tuple(raw)


def _bind(raw: Any) -> str:
    text = _text(raw)
    if text.startswith("unix:"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port or unix:PATH, got {raw!r}")
    return text


def _optional_redis_url(raw: Any) -> str | None:
    """A URL redis-py understands: ``redis://``, ``rediss://`` or ``unix://``."""
    from redis.connection import parse_url  # redis-py's own parser: what the client will do

    value = _optional_text(raw)
    if value is None:
        return None
    scheme = value.split("://", 1)[0]
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    database = urlsplit(value).path.strip("/")
    if scheme != "unix" and database and not database.isdigit():
        # redis-py would quietly use db 0.
        raise ValueError("the path must be a database number, as in redis://host:6379/0")
    try:
        parse_url(value)
    except ValueError as exc:
        # Only redis-py's own "Invalid value for 'db'..." is repeated: other messages
        # could quote part of the URL, and the URL may hold the password.
        said = str(exc)
        raise ValueError(said if said.startswith("Invalid value for") else
                         "is not a valid Redis URL") from None
    return value


def _host_port_list(raw: Any) -> tuple[str, ...]:
    """A JSON list of ``host:port`` strings (a Sentinel on each)."""
    values = _text_list(raw)
    for value in values:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
    return values


def _one_of(*choices: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return str(raw)

    return parse


def _optional_one_of(*choices: str) -> Callable[[Any], str | None]:
    strict = _one_of(*choices)

    def parse(raw: Any) -> str | None:
        return None if raw in (None, "") else strict(raw)

    return parse


def _optional_timestamp(raw: Any) -> datetime | None:
    """An ISO 8601 time (UTC unless it says otherwise) or seconds since the epoch."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw, UTC)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time, got {raw!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"expected an ISO 8601 time, got {raw!r}")


def _one_kek(raw: Any) -> bytes:
    """A 256-bit key, base64url encoded (padding optional)."""
    if not isinstance(raw, str) or not raw:
        raise ValueError("expected base64url text")
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64url") from None
    if len(key) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(key)}")
    return key


def _optional_kek(raw: Any) -> bytes | None:
    """One key, or a JSON list of keys (the first seals, all open: KEK rotation)."""
    if raw is None or raw == "" or raw == [] or raw == ():
        return None
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("expected a key or a JSON list of keys") from None
    if not isinstance(raw, (list, tuple)):
        return Kek([_one_kek(raw)])
    keys = []
    for position, value in enumerate(raw, start=1):
        try:
            keys.append(_one_kek(value))
        except ValueError as exc:
            raise ValueError(f"key {position} of the list {exc}") from None
    if len(set(keys)) != len(keys):
        raise ValueError("lists the same key twice")
    return Kek(keys)


def _rate_limit(raw: Any) -> str:
    """A flask-limiter rate string such as ``10/minute`` or ``5 per second; 100/hour``."""
    from limits import parse_many  # flask-limiter's own parser

    if not isinstance(raw, str):
        raise ValueError(f"expected a rate such as 10/minute, got {raw!r}")
    try:
        parse_many(raw)
    except ValueError:
        raise ValueError(f"expected a rate such as 10/minute, got {raw!r}") from None
    return raw


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
        None, _optional_text, "SQLAlchemy URL; unset means SQLite in `instance/tessera.db`."
    )
    redis_url: str | None = _setting(
        None,
        _optional_redis_url,
        "Redis URL for the denylist and rate-limit counters; unset keeps both in the database. "
        "`redis://`, `rediss://` (TLS; `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, "
        "`ssl_cert_reqs` as query arguments) or `unix://` (a socket path).",
        secret=True,  # it may carry the password
    )
    redis_sentinels: tuple[str, ...] = _setting(
        (),
        _host_port_list,
        "Redis Sentinels as a JSON list of `host:port`; set, the primary is found through "
        "them and `REDIS_URL` gives only the scheme, credentials, db and TLS options.",
    )
    redis_sentinel_service: str = _setting(
        "mymaster", _text, "The Sentinel service (master) name of Tessera's Redis."
    )
    redis_sentinel_password: str | None = _setting(
        None,
        _optional_text,
        "Password of the Sentinels themselves (their `requirepass`); unset: none.",
        secret=True,
    )
    bind: str = _setting(
        "127.0.0.1:8000", _bind,
        "Where gunicorn listens (`host:port` or `unix:PATH`); beyond loopback the "
        "production guard rails apply.",
    )
    issuer: str = _setting(
        "http://127.0.0.1:8000", _text, "`iss` of every token and the service's base URL."
    )
    audience: str | None = _setting(
        None, _optional_text, "`aud` of access tokens; unset means ISSUER + `/api`."
    )
    # Tokens (SPEC §3)
    access_token_ttl: timedelta = _setting(900, _seconds, "Access token lifetime, seconds.")
    clock_skew_leeway: timedelta = _setting(
        30, _seconds_or_zero, "Leeway for `exp`, `nbf`, `iat`, seconds."
    )
    token_max_bytes: int = _setting(8192, _positive_int, "Largest token accepted, bytes.")
    signing_algorithm: str = _setting(
        "ES256", _one_of(*SIGNING_ALGORITHMS), "Algorithm of new asymmetric keys."
    )
    # Keyring (SPEC §4)
    key_encryption_key: bytes | None = _setting(
        None,
        _optional_kek,
        "base64url 32-byte key that encrypts private keys and TOTP secrets at rest, or a "
        "JSON list of such keys (the first seals, every one opens: KEK rotation); unset with "
        "the embedded database means one generated into `instance/` (0600).",
        secret=True,
    )
    key_rotation_interval: timedelta = _setting(
        30 * 86400, _seconds, "Age of the active key at which `keys rotate --if-due` rotates."
    )
    keyring_refresh: timedelta = _setting(
        5, _seconds, "How often a worker reloads the keyring from the database, seconds."
    )
    keyring_reload_cooldown: timedelta = _setting(
        1, _seconds_or_zero, "Least time between reloads caused by unknown kids, seconds."
    )
    jwks_max_age: int = _setting(300, _non_negative_int, "`max-age` of the JWKS, seconds.")
    metadata_max_age: int = _setting(
        60,
        _non_negative_int,
        "`max-age` of the RFC 8414 metadata, which carries the migration phase "
        "(`tessera_migration`): the longest a verifier may follow an old phase, seconds.",
    )
    # HS256 migration (SPEC §4)
    migration_phase: str | None = _setting(
        None,
        _optional_one_of(*MIGRATION_PHASES),
        "Initial phase (`legacy`, `dual`, `asymmetric`) until one is set through the CLI "
        "or admin API; unset means `dual` with legacy secrets, else `asymmetric`.",
    )
    legacy_hs256_secrets: tuple[str, ...] = _setting(
        (),
        _text_list,
        "Legacy HS256 secrets, JSON list, oldest last; verify-only.",
        secret=True,
    )
    legacy_accept_until: datetime | None = _setting(
        None, _optional_timestamp, "ISO 8601 time after which HS256 tokens are refused."
    )
    legacy_max_lifetime: timedelta = _setting(
        30 * 86400,
        _seconds,
        "Longest a legacy HS256 token may still live: one whose `exp` is further away is "
        "refused; revocations that cannot see a token's `exp` last this long, seconds.",
    )
    legacy_subject_claim: str = _setting("sub", _text, "Claim naming the user in legacy tokens.")
    legacy_subject_lookup: str = _setting(
        "id",
        _one_of("id", "username"),
        "Whether that claim holds a user id or a username (matched exactly, as stored).",
    )
    legacy_issuer: str | None = _setting(None, _optional_text, "Required `iss` of legacy tokens.")
    legacy_audience: str | None = _setting(
        None, _optional_text, "Required `aud` of legacy tokens."
    )
    # Sessions (SPEC §5)
    session_max_age: timedelta = _setting(
        30 * 86400, _seconds, "Absolute session lifetime, seconds."
    )
    session_idle_timeout: timedelta = _setting(
        7 * 86400, _seconds, "Session ends after this long unused, seconds."
    )
    refresh_reuse_grace: timedelta = _setting(
        10, _seconds_or_zero, "Window in which the previous refresh token is not reuse, seconds."
    )
    cookie_secure: bool = _setting(
        True, _boolean, "`false` (development only) drops `Secure` and the cookie prefixes."
    )
    registration_enabled: bool = _setting(False, _boolean, "Allow `POST /auth/register`.")
    # Revocation (SPEC §6)
    revocation_fail_mode: str = _setting(
        "open",
        _one_of("open", "closed"),
        "`open`: fall back to the database when Redis is down or may have lost revocations "
        "(until rebuilt); `closed`: answer 503.",
    )
    revocation_mirror: bool = _setting(
        True,
        _boolean,
        "Keep a per-worker copy of the Redis denylist, invalidated by Redis client tracking, "
        "so that checks need no round trip (see Speed); `false`: one `MGET` per check.",
    )
    revocation_trust_recheck: timedelta = _setting(
        1,
        _seconds,
        "How often each worker re-reads the database's word on whether Redis holds every "
        "revocation, and asks Redis who it is (INFO), seconds.",
    )
    revocation_redis_wait_replicas: int = _setting(
        0,
        _non_negative_int,
        "Replicas that must acknowledge every revocation (Redis `WAIT`); one not acknowledged "
        "in time makes Redis untrusted until it is rebuilt. 0: no wait.",
    )
    revocation_redis_wait_timeout: timedelta = _setting(
        0.5, _fractional_seconds, "How long a revocation waits for those replicas, seconds."
    )
    # MFA (SPEC §7)
    mfa_token_ttl: timedelta = _setting(300, _seconds, "Lifetime of the login MFA token, seconds.")
    mfa_issuer: str = _setting(
        "Tessera", _text, "Issuer label authenticator apps show next to the account name."
    )
    # Passkeys (WebAuthn Level 3)
    webauthn_rp_id: str | None = _setting(
        None, _optional_text,
        "WebAuthn relying party id (a domain); unset means the host of `ISSUER`.",
    )
    webauthn_origin: str | None = _setting(
        None, _optional_text,
        "The one origin passkey ceremonies may come from; unset means `ISSUER`'s "
        "scheme, host and port.",
    )
    webauthn_timeout: timedelta = _setting(
        120, _seconds,
        "How long a passkey ceremony's challenge lives (and the browser waits), seconds.",
    )
    # Service clients (RFC 7662, RFC 7009)
    client_secret_overlap: timedelta = _setting(
        86400, _seconds_or_zero,
        "How long a service client's previous secret keeps working after a rotation, seconds.",
    )
    # Security events (RFC 8417 SETs polled per RFC 8936; app/events)
    security_events_long_poll: timedelta = _setting(
        20, _seconds,
        "Longest a stream poll that may wait (`returnImmediately: false`) is held open "
        "waiting for an event, seconds.",
    )
    security_events_recheck: timedelta = _setting(
        0.5, _fractional_seconds,
        "How often a waiting poll re-reads the database whatever it was told: the delivery "
        "bound to a receiver waiting on another worker without Redis, seconds.",
    )
    security_events_max_batch: int = _setting(
        100, _positive_int, "Most SETs one poll returns (a receiver's `maxEvents` is capped)."
    )
    # Rate limits (SPEC §9): flask-limiter rate strings
    ratelimit_login_per_ip: str = _setting(
        "10/minute", _rate_limit, "Failed logins per client address."
    )
    ratelimit_login_per_username: str = _setting(
        "10/minute", _rate_limit, "Failed logins per username (any address)."
    )
    ratelimit_mfa: str = _setting(
        "5/minute", _rate_limit, "MFA code attempts per user and per address (verify, step-up)."
    )
    ratelimit_refresh: str = _setting("30/minute", _rate_limit, "Refreshes per address.")
    ratelimit_exchange: str = _setting(
        "10/minute", _rate_limit, "Legacy exchanges and registrations per address."
    )
    ratelimit_events: str = _setting(
        "600/minute", _rate_limit, "Security-event stream calls (poll, stream) per address."
    )
    # Operations
    metrics_token: str | None = _setting(
        None,
        _optional_text,
        "Bearer token that may read `/metrics`; unset means loopback callers only.",
        secret=True,
    )
    log_level: str = _setting(
        "INFO", _one_of(*LOG_LEVELS),
        "Least level logged (stdout), for the app and gunicorn.",
    )
    log_format: str = _setting(
        "json", _one_of(*LOG_FORMATS),
        "`json`: one JSON object per line (time, level, logger, message, request id, audit "
        "fields); `text`: plain lines for a terminal.",
    )
    # HTTP
    max_content_length: int = _setting(65536, _positive_int, "Largest request body, bytes.")
    trusted_proxies: int = _setting(
        0, _non_negative_int, "Number of proxies whose `X-Forwarded-For` is believed."
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


def load_settings(raw: Mapping[str, Any]) -> Settings:
    """Parse and validate every setting from ``raw``; raise ConfigError naming the first bad one."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = f.name.upper()
        value = raw.get(name)
        if value is None:  # unset (Flask itself presets some names, e.g. MAX_CONTENT_LENGTH)
            value = f.metadata["default"]
        try:
            values[f.name] = f.metadata["parse"](value)
        except ValueError as exc:
            raise ConfigError(f"setting {name} (env TESSERA_{name}): {exc}") from None
    _check_sentinels(values)
    return Settings(**values)


def setting_default(name: str) -> Any:
    """The parsed default of setting ``name`` (e.g. to tell whether it was left alone)."""
    for f in fields(Settings):
        if f.name.upper() == name:
            return f.metadata["parse"](f.metadata["default"])
    raise KeyError(name)


def _check_sentinels(values: Mapping[str, Any]) -> None:
    """Sentinel needs REDIS_URL for the credentials and TLS options, and TCP."""
    if not values["redis_sentinels"]:
        return
    url = values["redis_url"]
    if url is None:
        raise ConfigError("setting REDIS_URL (env REDIS_URL): required when REDIS_SENTINELS "
                          "is set (it gives the scheme, credentials, db and TLS options)")
    if url.startswith("unix://"):
        raise ConfigError("setting REDIS_URL (env REDIS_URL): a unix:// socket cannot be "
                          "used with REDIS_SENTINELS; use redis:// or rediss://")


def setting_docs() -> list[tuple[str, Any, str]]:
    """(name, default, description) of every setting, for the README and the CLI."""
    return [(f.name.upper(), f.metadata["default"], f.metadata["doc"]) for f in fields(Settings)]
