"""The parsers of app.config: each takes a raw setting and returns the typed value or
raises ``ValueError`` (which ``load_settings`` turns into a ``ConfigError`` naming the key)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .core.crypto import Kek

# --- parsers: each takes the raw value and returns the typed one or raises ValueError


def integer(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected a whole number, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw.strip())
    raise ValueError(f"expected a whole number, got {raw!r}")


def positive_int(raw: Any) -> int:
    value = integer(raw)
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def non_negative_int(raw: Any) -> int:
    value = integer(raw)
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def seconds(raw: Any) -> timedelta:
    return timedelta(seconds=positive_int(raw))


def seconds_or_zero(raw: Any) -> timedelta:
    return timedelta(seconds=non_negative_int(raw))


def fractional_seconds(raw: Any) -> timedelta:
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


def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(raw, str) and raw.strip().lower() in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def optional_text(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError(f"expected text, got {type(raw).__name__}")
    return raw


def text(raw: Any) -> str:
    value = optional_text(raw)
    if value is None:
        raise ValueError("must not be empty")
    return value


def text_list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("expected a JSON list of strings") from None
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) and v for v in raw):
        raise ValueError("expected a list of non-empty strings")
    return tuple(raw)


def bind(raw: Any) -> str:
    value = text(raw)
    if value.startswith("unix:"):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port or unix:PATH, got {raw!r}")
    return value


def optional_redis_url(raw: Any) -> str | None:
    """A URL redis-py understands: ``redis://``, ``rediss://`` or ``unix://``."""
    from redis.connection import parse_url  # redis-py's own parser: what the client will do

    value = optional_text(raw)
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


def host_port_list(raw: Any) -> tuple[str, ...]:
    """A JSON list of ``host:port`` strings (a Sentinel on each)."""
    values = text_list(raw)
    for value in values:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
    return values


def one_of(*choices: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return str(raw)

    return parse


def optional_one_of(*choices: str) -> Callable[[Any], str | None]:
    strict = one_of(*choices)

    def parse(raw: Any) -> str | None:
        return None if raw in (None, "") else strict(raw)

    return parse


def optional_timestamp(raw: Any) -> datetime | None:
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


def one_kek(raw: Any) -> bytes:
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


def optional_kek(raw: Any) -> bytes | None:
    """One key, or a JSON list of keys (the first seals, all open: KEK rotation)."""
    if raw is None or raw == "" or raw == [] or raw == ():
        return None
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("expected a key or a JSON list of keys") from None
    if not isinstance(raw, (list, tuple)):
        return Kek([one_kek(raw)])
    keys = []
    for position, value in enumerate(raw, start=1):
        try:
            keys.append(one_kek(value))
        except ValueError as exc:
            raise ValueError(f"key {position} of the list {exc}") from None
    if len(set(keys)) != len(keys):
        raise ValueError("lists the same key twice")
    return Kek(keys)


def rate_limit(raw: Any) -> str:
    """A flask-limiter rate string such as ``10/minute`` or ``5 per second; 100/hour``."""
    from limits import parse_many  # flask-limiter's own parser

    if not isinstance(raw, str):
        raise ValueError(f"expected a rate such as 10/minute, got {raw!r}")
    try:
        parse_many(raw)
    except ValueError:
        raise ValueError(f"expected a rate such as 10/minute, got {raw!r}") from None
    return raw
