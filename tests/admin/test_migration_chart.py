"""The migration as a picture (issue 19): tokens per day in the API, and the same numbers
drawn as server-rendered SVG on the admin page (no script, no style attribute)."""

from __future__ import annotations

import re
from datetime import timedelta

import jwt
import pytest

from app.core.migration_chart import DayTraffic, draw
from tests.support.actions import AuthActions
from tests.support.tokens import bearer, make_user

LEGACY = "old-shared-secret-0123456789-abcdef"


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    sunset = (clock() + timedelta(days=10)).isoformat()
    app = make_app(COOKIE_SECURE=False, clock=clock, LEGACY_HS256_SECRETS=[LEGACY],
                   MIGRATION_PHASE="dual", LEGACY_ACCEPT_UNTIL=sunset,
                   RATELIMIT_LOGIN_PER_IP="1000/minute", RATELIMIT_EXCHANGE="1000/minute")
    make_user(app, "root", roles=("admin",))
    make_user(app, "alice")
    return app


def _legacy(clock) -> str:  # type: ignore[no-untyped-def]
    return jwt.encode({"sub": "2", "exp": int(clock().timestamp()) + 600}, LEGACY,
                      algorithm="HS256")


def test_tokens_per_day_in_the_api(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/me", headers=bearer(_legacy(clock))).status_code == 200
    clock.advance(86400)  # the next day: one exchange, then logins
    exchanged = client.post("/auth/token/exchange", headers=bearer(_legacy(clock)))
    assert exchanged.status_code == 200, exchanged.get_json()
    admin = AuthActions(app.test_client()).login(username="root").get_json()["access_token"]
    body = client.get("/admin/api/migration/traffic", headers=bearer(admin)).get_json()
    days = body["days"]
    assert len(days) == 30 and days[-1]["day"] == clock().date().isoformat()
    yesterday, today = days[-2], days[-1]
    assert yesterday == {"day": (clock() - timedelta(days=1)).date().isoformat(),
                         "hs256_accepted": 3, "hs256_exchanged": 0, "tokens_issued": 0}
    # Today: the exchange (its legacy token counts as accepted), and two new tokens.
    assert today["hs256_accepted"] == 1 and today["hs256_exchanged"] == 1
    assert today["tokens_issued"] == 2
    assert body["legacy_accept_until"].startswith((clock() + timedelta(days=9)).date().isoformat())


def test_the_chart_is_plain_svg_with_the_sunset(app, clock) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for _ in range(4):
        client.get("/api/me", headers=bearer(_legacy(clock)))
    auth = AuthActions(app.test_client())
    auth.login(username="root")
    page = auth.client.get("/admin")
    html = page.get_data(as_text=True)
    figure = html[html.index('<figure class="chart"'):html.index("</figure>")]
    assert figure.count("<polyline") == 3 and 'id="chart-sunset"' in figure
    assert "<script" not in figure and "style=" not in figure and " on" not in figure.lower()
    assert "HS256 accepted: 4" in figure
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_geometry_stays_in_the_plot_and_marks_a_distant_sunset(clock) -> None:  # type: ignore[no-untyped-def]
    today = clock().date()
    traffic = [DayTraffic(today - timedelta(days=29 - i), i * 7, i % 3, 1000 - i)
               for i in range(30)]
    chart = draw(traffic, clock() + timedelta(days=400))
    assert chart.sunset is None and "off this axis" in (chart.sunset_note or "")
    for series in chart.series:
        for point in series.points.split():
            x, y = map(float, point.split(","))
            assert chart.left <= x <= chart.right and chart.top <= y <= chart.bottom
    assert chart.y_ticks[-1][1] >= 1000 and chart.y_ticks[-1][1] % 4 == 0
    near = draw(traffic, clock() + timedelta(days=5))
    assert near.sunset is not None and near.sunset[0] == near.right
    assert all(re.fullmatch(r"\d\d-\d\d", label) for _, label in near.x_ticks)
