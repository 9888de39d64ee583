"""What a browser or API client does, as one-liners for tests (``auth.login()``...)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.tokens import PASSWORD


class AuthActions:
    """Drive the auth API through one test client (its cookie jar is the browser's)."""

    def __init__(self, client: FlaskClient, secure: bool = False) -> None:
        self.client = client
        prefix = ("__Host-", "__Secure-") if secure else ("", "")
        self.access_cookie = prefix[0] + "access_token"
        self.csrf_cookie = prefix[0] + "csrf_token"
        self.refresh_cookie = prefix[1] + "refresh_token"

    def login(self, username: str = "alice", password: str = PASSWORD,
              **extra: Any) -> TestResponse:
        return self.client.post("/auth/login", json={"username": username, "password": password,
                                                     **extra})

    def cookie(self, name: str, path: str = "/") -> str | None:
        cookie = self.client.get_cookie(name, path=path)
        return cookie.value if cookie is not None else None

    @property
    def refresh_token(self) -> str | None:
        return self.cookie(self.refresh_cookie, path="/auth")

    def csrf_headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.cookie(self.csrf_cookie) or ""}

    def refresh(self, **headers: str) -> TestResponse:
        return self.client.post("/auth/refresh", headers={**self.csrf_headers(), **headers})

    def logout(self) -> TestResponse:
        return self.client.post("/auth/logout", headers=self.csrf_headers())

    def me(self, token: str | None = None) -> TestResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get("/api/me", headers=headers)
