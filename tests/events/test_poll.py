"""The RFC 8936 poll: acknowledgements, redelivery, batches, client authentication,
bad bodies, and long polls woken at once by a commit (in-process and through Redis)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from app.security.revocation import revocations
from tests.events.support import basic, make_receiver, poll


@pytest.fixture
def app(make_app, clock):  # type: ignore[no-untyped-def]
    return make_app(COOKIE_SECURE=False, clock=clock)


def _revoke(app, *jtis: str) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        now = app.extensions["tessera.clock"]()
        for jti in jtis:
            revocations().revoke_jti(jti, now + timedelta(minutes=15), now, "admin")


def test_unacknowledged_sets_come_again_and_acknowledged_ones_do_not(app) -> None:  # type: ignore[no-untyped-def]
    creds, other = make_receiver(app), make_receiver(app)
    _revoke(app, "a", "b", "c")
    first = poll(app, creds, maxEvents=2).get_json()
    assert len(first["sets"]) == 2 and first["moreAvailable"] is True
    again = poll(app, creds, maxEvents=2).get_json()
    assert again["sets"].keys() == first["sets"].keys()  # not acknowledged: redelivered
    one, two = first["sets"]
    rest = poll(app, creds, ack=[one], setErrs={two: {"err": "invalid_key", "description": "x"}},
                maxEvents=10).get_json()
    assert len(rest["sets"]) == 1 and rest["moreAvailable"] is False
    (three,) = rest["sets"]
    assert poll(app, creds, ack=[three], maxEvents=0).get_json() == {
        "sets": {}, "moreAvailable": False}
    assert poll(app, creds).get_json()["sets"] == {}
    # Each receiver has its own queue and its own jtis; another's ack changes nothing.
    theirs = poll(app, other, ack=[one, two, three]).get_json()
    assert len(theirs["sets"]) == 3 and not set(theirs["sets"]) & {one, two, three}


def test_acknowledged_counter(app) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    _revoke(app, "a", "b")
    one, two = poll(app, creds).get_json()["sets"]
    poll(app, creds, ack=[one, one], setErrs={two: {"err": "x"}}, maxEvents=0)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'tessera_security_events_acknowledged_total{result="ack"} 1.0' in text
    assert 'tessera_security_events_acknowledged_total{result="error"} 1.0' in text
    assert "tessera_security_events_delivered_total 2.0" in text


@pytest.mark.parametrize(("headers", "status", "error"), [
    ({}, 401, "unauthorized"),
    ({"Authorization": "Bearer x"}, 401, "unauthorized"),
    ("wrong-secret", 401, "unauthorized"),
    ("no-scope", 403, "forbidden"),
])
def test_poll_needs_a_client_with_the_events_scope(app, headers, status, error) -> None:  # type: ignore[no-untyped-def]
    if headers == "wrong-secret":
        headers = basic(make_receiver(app)[0], "nope")
    elif headers == "no-scope":
        headers = basic(*make_receiver(app, scopes=("introspect",)))
    for method, path in (("post", "/ssf/poll"), ("get", "/ssf/stream")):
        answer = getattr(app.test_client(), method)(path, json={}, headers=headers)
        assert answer.status_code == status and answer.get_json()["error"] == error
        if status == 401:
            assert answer.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(("body", "field"), [
    ({"maxEvents": -1}, "maxEvents"),
    ({"maxEvents": "3"}, "maxEvents"),
    ({"returnImmediately": "yes"}, "returnImmediately"),
    ({"ack": "abc"}, "ack"),
    ({"setErrs": {"j": {"description": "no err"}}}, "setErrs"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_poll_bodies_are_named_and_change_nothing(app, body, field) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    _revoke(app, "a")
    answer = app.test_client().post("/ssf/poll", json=body, headers=basic(*creds))
    assert answer.status_code == 400 and field in answer.get_json()["details"]
    assert len(poll(app, creds).get_json()["sets"]) == 1


def test_ssf_metadata_and_stream_configuration(app) -> None:  # type: ignore[no-untyped-def]
    meta = app.test_client().get("/.well-known/ssf-configuration").get_json()
    assert meta["issuer"] == "http://localhost"
    assert meta["jwks_uri"] == "http://localhost/.well-known/jwks.json"
    assert meta["delivery_methods_supported"] == ["urn:ietf:rfc:8936"]
    creds = make_receiver(app)
    stream = app.test_client().get(meta["configuration_endpoint"].removeprefix("http://localhost"),
                                   headers=basic(*creds)).get_json()
    assert stream["aud"] == creds[0] and stream["iss"] == "http://localhost"
    assert stream["delivery"] == {"method": "urn:ietf:rfc:8936",
                                  "endpoint_url": "http://localhost/ssf/poll"}
    assert "https://schemas.openid.net/secevent/caep/event-type/session-revoked" in \
        stream["events_delivered"]


def _timed_poll(app, creds, out: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    out["body"] = poll(app, creds, returnImmediately=False).get_json()
    out["seconds"] = time.monotonic() - started


def _wait_and_revoke(waiter_app, revoker_app, creds) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    out: dict[str, Any] = {}
    thread = threading.Thread(target=_timed_poll, args=(waiter_app, creds, out))
    thread.start()
    time.sleep(0.5)  # the poll is waiting
    assert thread.is_alive()
    revoked_at = time.monotonic()
    _revoke(revoker_app, "late")
    thread.join(timeout=15)
    assert not thread.is_alive()
    out["after_revoke"] = time.monotonic() - revoked_at
    return out


def test_a_waiting_poll_gets_an_event_at_once(make_app) -> None:  # type: ignore[no-untyped-def]
    # The database re-check is 10 s away: only the commit's wake-up can deliver in time.
    app = make_app(SECURITY_EVENTS_RECHECK=10, SECURITY_EVENTS_LONG_POLL=20)
    creds = make_receiver(app)
    out = _wait_and_revoke(app, app, creds)
    assert len(out["body"]["sets"]) == 1 and out["after_revoke"] < 2


def test_a_poll_waiting_on_another_worker_is_woken_through_redis(make_app, redis_url) -> None:  # type: ignore[no-untyped-def]
    # Two apps on one database and one Redis stand for two workers.
    waiter = make_app(REDIS_URL=redis_url, SECURITY_EVENTS_RECHECK=10)
    revoker = make_app(REDIS_URL=redis_url, SECURITY_EVENTS_RECHECK=10, keys=False)
    creds = make_receiver(waiter)
    out = _wait_and_revoke(waiter, revoker, creds)
    assert len(out["body"]["sets"]) == 1 and out["after_revoke"] < 2


def test_without_redis_another_worker_learns_within_the_recheck(make_app) -> None:  # type: ignore[no-untyped-def]
    waiter = make_app(SECURITY_EVENTS_RECHECK=0.3)
    revoker = make_app(SECURITY_EVENTS_RECHECK=0.3, keys=False)
    creds = make_receiver(waiter)
    out = _wait_and_revoke(waiter, revoker, creds)
    assert len(out["body"]["sets"]) == 1 and out["after_revoke"] < 2


def test_a_long_poll_with_nothing_ends_empty_after_its_bound(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(SECURITY_EVENTS_LONG_POLL=1, SECURITY_EVENTS_RECHECK=0.2)
    creds = make_receiver(app)
    started = time.monotonic()
    assert poll(app, creds, returnImmediately=False).get_json() == {
        "sets": {}, "moreAvailable": False}
    assert 0.9 < time.monotonic() - started < 5


def _cursor(app, creds) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from app.extensions import db
    from app.models import SecurityEventCursor
    with app.app_context():
        return int(db.session.scalar(select(SecurityEventCursor.acked_through).where(
            SecurityEventCursor.client_id == creds[0])) or 0)


def _event_id(app, value: str) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from app.extensions import db
    from app.models import SecurityEvent
    with app.app_context():
        return int(db.session.scalar(select(SecurityEvent.id).where(SecurityEvent.value == value)))


def test_the_cursor_passes_acknowledged_events_only_and_never_a_young_one(app, clock) -> None:  # type: ignore[no-untyped-def]
    creds = make_receiver(app)
    _revoke(app, "a", "b", "c")
    one, two, three = poll(app, creds).get_json()["sets"]
    poll(app, creds, ack=[one, three], maxEvents=0)
    assert _cursor(app, creds) == 0  # younger than SETTLE: ids may still commit below them
    clock.advance(61)
    poll(app, creds, ack=[one], maxEvents=0)
    assert _cursor(app, creds) == _event_id(app, "a")  # "b" is still pending
    assert list(poll(app, creds).get_json()["sets"]) == [two]
    poll(app, creds, ack=[two], maxEvents=0)
    assert _cursor(app, creds) == _event_id(app, "c")
    _revoke(app, "d")
    (four,) = poll(app, creds).get_json()["sets"]
    poll(app, creds, ack=[four], maxEvents=0)
    assert _cursor(app, creds) == _event_id(app, "c")  # "d" has not settled
    assert poll(app, creds).get_json()["sets"] == {}


def _waiting_poll(app, creds) -> tuple[threading.Thread, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A long poll in a thread, seen still waiting half a second later."""
    out: dict[str, Any] = {}
    thread = threading.Thread(target=_timed_poll, args=(app, creds, out))
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()
    return thread, out


def _answered_at_once(app, creds) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A long poll that must not wait: answered while the poll bound (20 s) is far off."""
    out: dict[str, Any] = {}
    thread = threading.Thread(target=_timed_poll, args=(app, creds, out))
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "a poll beyond the cap waited"
    return out["body"]  # type: ignore[no-any-return]


def test_few_long_polls_wait_at_once_the_others_are_answered_at_once(make_app) -> None:  # type: ignore[no-untyped-def]
    # One waiting poll per receiver, MAX_WAITING (2) per process: the rest of the
    # worker's threads stay free for logins and pages.
    app = make_app(SECURITY_EVENTS_LONG_POLL=20, SECURITY_EVENTS_RECHECK=10)
    one, two, three = make_receiver(app), make_receiver(app), make_receiver(app)
    first, first_out = _waiting_poll(app, one)
    # The same receiver again: answered at once, empty, while its first poll still waits.
    assert _answered_at_once(app, one) == {"sets": {}, "moreAvailable": False}
    assert first.is_alive()
    second, second_out = _waiting_poll(app, two)  # another receiver may wait
    assert _answered_at_once(app, three) == {"sets": {}, "moreAvailable": False}  # 2 wait
    _revoke(app, "late")  # the waiting polls are woken and answered
    for thread in (first, second):
        thread.join(timeout=15)
        assert not thread.is_alive()
    assert len(first_out["body"]["sets"]) == 1 and len(second_out["body"]["sets"]) == 1
    # An answer beyond the cap still carries what is pending.
    assert len(_answered_at_once(app, three)["sets"]) == 1
    # The places are given back: the first receiver's next poll waits again.
    poll(app, one, ack=list(first_out["body"]["sets"]), maxEvents=0)
    again, again_out = _waiting_poll(app, one)
    _revoke(app, "later")
    again.join(timeout=15)
    assert not again.is_alive() and len(again_out["body"]["sets"]) == 1


def test_the_bell_holds_one_place_per_receiver_and_max_waiting_in_all() -> None:
    from app.events.bell import MAX_WAITING, EventBell

    ring = EventBell(None)
    assert MAX_WAITING == 2
    with ring.hold("a") as a, ring.hold("a") as a_again, ring.hold("b") as b, \
            ring.hold("c") as c:
        assert (a, a_again, b, c) == (True, False, True, False)
    with ring.hold("c") as c, ring.hold("a") as a:
        assert (c, a) == (True, True)


def test_a_long_set_errs_list_is_acknowledged_whole_and_logged_once(make_app, caplog) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from app.core import security_events
    from app.core.secevent_tokens import set_jti
    from app.extensions import db
    from app.models import SecurityEventAck

    # More entries than one acknowledgement statement takes (2,000): 4,500 in one body.
    app = make_app(MAX_CONTENT_LENGTH=1 << 20)
    creds, other = make_receiver(app), make_receiver(app)
    codes = ("invalid_key", "invalid_issuer", "invalid_audience")
    count = 4500
    with app.app_context():
        now = app.extensions["tessera.clock"]()
        rows = security_events.record(db.session, [("jti", f"j{n}", None) for n in range(count)],
                                      now + timedelta(minutes=15), now, "admin")
        db.session.commit()
        uids = [row.uid for row in rows]
    errs = {set_jti(uid, creds[0]): {"err": codes[n % 3], "description": "bad"}
            for n, uid in enumerate(uids[:-1])}
    errs["made-up"] = {"err": "invalid_key"}  # not one of this receiver's: ignored
    caplog.set_level("INFO")
    answer = poll(app, creds, ack=[set_jti(uids[-1], creds[0])], setErrs=errs, maxEvents=0)
    assert answer.status_code == 200
    assert answer.get_json() == {"sets": {}, "moreAvailable": False}  # every one is marked
    assert poll(app, creds).get_json()["sets"] == {}
    assert len(poll(app, other, maxEvents=1).get_json()["sets"]) == 1  # others' queues stay
    with app.app_context():
        marked = {error: n for error, n in db.session.execute(
            select(SecurityEventAck.error, func.count())
            .where(SecurityEventAck.client_id == creds[0]).group_by(SecurityEventAck.error))}
    assert marked == {None: 1, "invalid_key": 1500, "invalid_issuer": 1500,
                      "invalid_audience": 1499}
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'tessera_security_events_acknowledged_total{result="error"} 4499.0' in text
    assert 'tessera_security_events_acknowledged_total{result="ack"} 1.0' in text
    # One line for the list: the client and the counts by code, no SET's jti.
    lines = [r.getMessage() for r in caplog.records if r.name == "app.events.feed"]
    assert len(lines) == 1, lines
    assert creds[0] in lines[0] and "4499 SETs" in lines[0]
    assert all(f"'{code}': {n}" in lines[0] for code, n in zip(
        codes, (1500, 1500, 1499), strict=True))
    assert not any(jti.split("-")[0] in lines[0] for jti in list(errs)[:50])
