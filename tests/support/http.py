"""A tiny HTTP client for tests that talk to real server processes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str]

    def json(self) -> Any:
        return json.loads(self.body)


def call(method: str, url: str, *, headers: dict[str, str] | None = None,
         json_body: Any = None, timeout: float = 10) -> Reply:
    """One request; HTTP errors are returned, not raised."""
    data = None
    all_headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read(),
                         response.headers.get_all("Set-Cookie") or [])
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read(),
                     error.headers.get_all("Set-Cookie") or [])


def login_token(base_url: str, username: str, password: str) -> str:
    """Log in over HTTP (a real session) and return the access token."""
    reply = call("POST", base_url + "/auth/login",
                 json_body={"username": username, "password": password})
    assert reply.status == 200, reply.body
    return str(reply.json()["access_token"])
