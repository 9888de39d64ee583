"""The HS256 migration as a picture (issue 19): tokens per day, drawn server-side.

``daily_traffic`` counts, per UTC day: legacy HS256 tokens accepted (the
``legacy_usage`` table), legacy tokens exchanged and tokens Tessera issued
(``LEGACY_TOKEN_EXCHANGED`` and ``TOKEN_ISSUED`` audit rows: ES256 outside the
``legacy`` phase, a login's and every refresh's). ``draw`` turns them into
plain geometry (polyline points, ticks, the sunset line) that a template
renders as inline SVG with presentation attributes only: no script and no
style attribute, so the pages' strict CSP stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import AuditEvent, LegacyUsage

__all__ = ["Chart", "DayTraffic", "Series", "daily_traffic", "draw"]

_AUDITED = {"LEGACY_TOKEN_EXCHANGED": "exchanged", "TOKEN_ISSUED": "issued"}


@dataclass(frozen=True)
class DayTraffic:
    day: date
    hs256_accepted: int
    exchanged: int
    issued: int


def _day(value: object) -> date:
    # SQLite's date() answers text, PostgreSQL's a date.
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def daily_traffic(session: Session, today: date, days: int = 30) -> list[DayTraffic]:
    """The last ``days`` UTC days up to ``today``, oldest first, every day present."""
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    counts: dict[tuple[date, str], int] = {}
    for row in session.scalars(select(LegacyUsage).where(LegacyUsage.day >= first)):
        counts[(row.day, "hs256")] = row.count
    day_of = func.date(AuditEvent.at)
    grouped = (select(day_of, AuditEvent.event, func.count())
               .where(AuditEvent.event.in_(list(_AUDITED)),
                      AuditEvent.at >= since)
               .group_by(day_of, AuditEvent.event))
    for day, event, count in session.execute(grouped):
        counts[(_day(day), _AUDITED[event])] = int(count)
    return [DayTraffic(d, counts.get((d, "hs256"), 0), counts.get((d, "exchanged"), 0),
                       counts.get((d, "issued"), 0))
            for d in (first + timedelta(days=i) for i in range(days))]


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: str  # "x,y x,y ..." for <polyline points>
    total: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    bottom: int  # y of the x axis
    right: int
    series: list[Series]
    y_ticks: list[tuple[float, int]]  # (y, value)
    x_ticks: list[tuple[float, str]]  # (x, "12-01")
    sunset: tuple[float, str] | None  # (x, label) when the sunset is on the axis
    sunset_note: str | None  # when it is beyond the axis (or passed before it)


_SERIES = (("HS256 accepted", "#c0392b", "hs256_accepted"),
           ("HS256 exchanged", "#d68910", "exchanged"),
           ("tokens issued (ES256)", "#1f618d", "issued"))


def draw(traffic: list[DayTraffic], sunset: datetime | None, *, width: int = 720,
         height: int = 260) -> Chart:
    """Geometry of the chart; the x axis runs over ``traffic``'s days and on to the
    sunset when it comes within as many days again."""
    left, right, top, bottom = 48, width - 16, 16, height - 36
    first, last = traffic[0].day, traffic[-1].day
    end = last
    if sunset is not None and last < sunset.date() <= last + timedelta(days=len(traffic)):
        end = sunset.date()
    span = max((end - first).days, 1)
    peak = max([1] + [max(t.hs256_accepted, t.exchanged, t.issued) for t in traffic])
    scale = _nice(peak)

    def x(day: date) -> float:
        return round(left + (right - left) * (day - first).days / span, 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - top) * value / scale, 1)

    series = [Series(name, colour, " ".join(f"{x(t.day)},{y(getattr(t, attr))}" for t in traffic),
                     sum(getattr(t, attr) for t in traffic))
              for name, colour, attr in _SERIES]
    step = max(span // 6, 1)
    x_ticks = [(x(first + timedelta(days=i)), (first + timedelta(days=i)).strftime("%m-%d"))
               for i in range(0, span + 1, step)]
    y_ticks = [(y(scale * i // 4), scale * i // 4) for i in range(5)]  # exact: scale % 4 == 0
    marker, note = None, None
    if sunset is not None:
        if first <= sunset.date() <= end:
            marker = (x(sunset.date()), f"sunset {sunset:%Y-%m-%d}")
        else:
            note = f"Sunset {sunset:%Y-%m-%d %H:%M} UTC, off this axis."
    return Chart(width, height, left, top, bottom, right, series, y_ticks, x_ticks, marker, note)


def _nice(peak: int) -> int:
    """The top of the y axis: four ticks of 1, 2 or 5 times a power of ten, at least ``peak``."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if 4 * factor * magnitude >= peak:
                return 4 * factor * magnitude
        magnitude *= 10
