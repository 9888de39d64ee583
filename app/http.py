"""Request plumbing shared by every blueprint: request ids, start times, JSON bodies."""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from flask import Flask, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema
from werkzeug.routing import IntegerConverter, Map
from werkzeug.sansio.response import Response

from .core.json_depth import MAX_JSON_DEPTH, nesting_exceeds
from .errors import UnsupportedMediaType, ValidationFailed
from .headers import REQUEST_ID_KEY
from .models.base import MAX_INTEGER_ID

__all__ = ["CompactJSONProvider", "NestedTooDeeply", "init_app", "load_json", "request_id"]

# A caller's id is kept only when it is short and plain, so logs cannot be forged through it.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id() -> str:
    """The id of the current request (from X-Request-ID when well-formed, else generated)."""
    return g.get("request_id") or _assign_request_id()


def _assign_request_id() -> str:
    offered = request.headers.get("X-Request-ID", "")
    rid = offered if _REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()  # uuid4: 5x slower
    g.request_id = request.environ[REQUEST_ID_KEY] = rid  # app.headers echoes it
    return rid


def _start_request() -> None:
    # One hook for both (each hook costs on every request); it must return None,
    # or Flask takes the value as the response.
    g.request_started = time.perf_counter()
    _assign_request_id()


def load_json(schema: Schema) -> Any:
    """Load the JSON body through ``schema``: 415 if not JSON, 400 if malformed, nested
    deeper than MAX_JSON_DEPTH, or invalid."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationFailed(_unreadable(request.get_data()))
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    return schema.load(body)


def _unreadable(data: bytes) -> str:
    """Why the body gave no JSON (parsed again: only refused bodies get here)."""
    try:
        current_app.json.loads(data)
    except NestedTooDeeply:
        return f"The request body nests deeper than {MAX_JSON_DEPTH} levels."
    except ValueError:
        pass
    return "The request body is not valid JSON."


class NestedTooDeeply(ValueError):
    """A JSON text nests deeper than MAX_JSON_DEPTH: refused like any invalid JSON.

    A ValueError, so that ``request.get_json`` treats it as one (None when
    silent, else werkzeug's 400) wherever the body is read, a rate-limit key
    included.
    """


class CompactJSONProvider(DefaultJSONProvider):
    """Flask's JSON in insertion order, compact, through one encoder built up front.

    Flask's own ``response`` builds an encoder for every call (about 4 µs of a
    protected request's budget); the output is the same minus key sorting.
    Reading refuses JSON nested deeper than MAX_JSON_DEPTH (issue 16 item 6).
    """

    sort_keys = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._encoder = json.JSONEncoder(ensure_ascii=self.ensure_ascii, sort_keys=False,
                                         separators=(",", ":"), default=self.default)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:  # json recurses per level: far deeper than the limit
            raise NestedTooDeeply() from None
        if nesting_exceeds(s):
            raise NestedTooDeeply()
        return value

    # The base class's return type: a sansio App types response_class as the sansio Response.
    def response(self, *args: Any, **kwargs: Any) -> Response:
        if args and kwargs:
            raise TypeError("jsonify() takes positional or keyword arguments, not both")
        obj = args[0] if len(args) == 1 else (list(args) if args else kwargs or None)
        return self._app.response_class(self._encoder.encode(obj) + "\n",
                                        mimetype=self.mimetype)


class DatabaseIdConverter(IntegerConverter):
    """``<id:name>``: a positive integer that fits an Integer key column; anything else is a 404."""

    def __init__(self, map: Map) -> None:  # `map`: werkzeug's parameter name
        super().__init__(map, min=1, max=MAX_INTEGER_ID)


def init_app(app: Flask) -> None:
    """Give every request an id and echo it on every response; the ``id`` URL converter;
    the compact JSON provider."""
    app.json = CompactJSONProvider(app)
    app.url_map.converters["id"] = DatabaseIdConverter
    app.before_request(_start_request)  # app.headers echoes the id on the response
