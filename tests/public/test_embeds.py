"""Embeds: framed only by the allowed sites, the same for everyone, no cookies, and cacheable."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from supporters.billing.models import FundingGoal, GoalMeasure
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Role
from supporters.public.models import EmbedOrigin
from supporters.voting.models import Poll
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import csrf_token, statements, submit, text
from tests.site import build_site, furnish, urls
from tests.voting.factories import make_patron, make_poll, option_ids, sign_in

EMBEDS = ("/embed/goals", "/embed/poll", "/embed/patrons")
HOST = "https://news.example"


def _frame_ancestors(response: TestResponse) -> str:
    policy = response.headers["Content-Security-Policy"]
    match = re.search(r"frame-ancestors ([^;]*)", policy)
    assert match, policy
    return match.group(1)


def _allow(*origins: str) -> None:
    db.session.add_all(EmbedOrigin(origin=origin) for origin in origins)
    db.session.commit()


def test_only_embeds_may_be_framed_and_only_by_the_allowed_sites(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(BENCH_ROUTES=True, PUBLIC_CACHE_SECONDS=0)
    with app.app_context():
        site = build_site(app)
        arguments = furnish(site, utcnow())
        _allow(HOST, "http://127.0.0.1:8080")
        admin = site.client("admin")
        framed = {}
        for endpoint, path in urls(app, arguments):
            response = admin.get(path)
            framed[endpoint] = (
                _frame_ancestors(response),
                response.headers.get("X-Frame-Options"),
            )
    allowed = ("'self' http://127.0.0.1:8080 https://news.example", None)
    embeds = {"public.embed_goals", "public.embed_poll", "public.embed_patrons"}
    assert {endpoint: framed[endpoint] for endpoint in embeds} == dict.fromkeys(embeds, allowed)
    refusing = {e: f for e, f in framed.items() if e not in embeds}
    assert len(refusing) > 40
    assert {e: f for e, f in refusing.items() if f != ("'none'", "DENY")} == {}


def _goal_and_poll() -> Poll:
    db.session.add(FundingGoal(title="A reporter", measure=GoalMeasure.PATRONS, target=100))
    poll = make_poll(("Schools", "Housing"))
    db.session.commit()
    return poll


def test_embeds_are_the_same_for_everyone_and_set_no_cookie(app: Flask) -> None:
    _goal_and_poll()
    patron = make_patron()
    staff = make_member(role=Role.ADMIN)
    db.session.commit()
    visitors = [app.test_client(), sign_in(app.test_client(), patron)]
    visitors.append(signed_in_client(app, staff))
    for path in (*EMBEDS, "/api/v1/goals", "/api/v1/polls", "/api/v1/openapi.json"):
        answers = [client.get(path, headers={"Accept-Language": "de"}) for client in visitors]
        assert [a.status_code for a in answers] == [200, 200, 200], path
        assert len({a.get_data() for a in answers}) == 1, path
        assert len({a.headers["ETag"] for a in answers}) == 1, path
        for answer in answers:
            assert "Set-Cookie" not in answer.headers, path
            assert "Cookie" not in answer.headers.get("Vary", ""), path
            assert answer.headers["Cache-Control"].startswith("public, max-age="), path
            assert "stale-while-revalidate=" in answer.headers["Cache-Control"], path
    # The signed-in pages still refresh their session, and are never cached.
    account = visitors[1].get("/account")
    assert "Set-Cookie" in account.headers and account.headers["Cache-Control"] == "no-store"


def test_the_goal_embed_shows_progress_and_opens_the_app_in_a_new_tab(app: Flask) -> None:
    _goal_and_poll()
    make_patron()
    db.session.commit()
    page = text(app.test_client().get("/embed/goals"))
    assert "1 of 100 patrons" in page and '<script src="/embed/frame.js"' in page
    links = re.findall(r"<a [^>]*>", page)
    assert links == [
        '<a class="button" href="http://localhost/#join" target="_blank" rel="noopener">'
    ]
    assert "http" not in re.sub(r'href="http://localhost/[^"]*"', "", page)  # nothing elsewhere

    poll = text(app.test_client().get("/embed/poll"))
    assert "Schools" in poll and "0 of 1 patrons have voted" in poll
    assert re.search(r'href="http://localhost/polls/\d+" target="_blank" rel="noopener">Vote', poll)


def _etags(client: FlaskClient) -> dict[str, str]:
    return {path: client.get(path).headers["ETag"] for path in ("/embed/goals", "/embed/poll")}


def test_etags_change_after_a_payment_and_a_ballot_and_not_otherwise(app: Flask) -> None:
    make_tier("reader", monthly=500, yearly=5000, position=1)
    poll = _goal_and_poll()
    voter = make_patron()
    db.session.commit()
    client = app.test_client()
    before = _etags(client)
    assert _etags(client) == before  # nothing happened

    # A 304 for the same figures, a full answer for the old ones once they change.
    goals = client.get("/embed/goals", headers={"If-None-Match": before["/embed/goals"]})
    assert goals.status_code == 304 and goals.get_data() == b""
    assert goals.headers["ETag"] == before["/embed/goals"]
    assert "Cache-Control" in goals.headers and "Set-Cookie" not in goals.headers

    # A ballot: the poll's turnout changes, the goals do not.
    voting = sign_in(app.test_client(), voter)
    ballot = {"option": option_ids(poll)[:1], "csrf_token": csrf_token(voting, f"/polls/{poll.id}")}
    assert voting.post(f"/polls/{poll.id}/vote", data=ballot).status_code == 303
    after_ballot = _etags(client)
    assert after_ballot["/embed/goals"] == before["/embed/goals"]
    assert after_ballot["/embed/poll"] != before["/embed/poll"]

    # A payment: a reader joins through the (demo) checkout and pays.
    member = make_member("new@example.org")
    db.session.commit()
    joining = signed_in_client(app, member)
    demo_page = submit(joining, "/", action="/support", tier="reader", interval="month")
    paid = joining.post(
        demo_page.headers["Location"],
        data={"csrf_token": csrf_token(joining, demo_page.headers["Location"]), "action": "pay"},
    )
    assert paid.status_code in (302, 303)
    after_payment = _etags(client)
    assert after_payment["/embed/goals"] != after_ballot["/embed/goals"]
    assert after_payment["/embed/poll"] != after_ballot["/embed/poll"]
    stale = client.get("/embed/goals", headers={"If-None-Match": before["/embed/goals"]})
    assert stale.status_code == 200 and "2 of 100 patrons" in text(stale)


def test_each_worker_serves_its_answers_again_for_a_second_without_the_database(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(PUBLIC_CACHE_SECONDS=1)
    clock = [1000.0]
    monkeypatch.setattr("supporters.kept.monotonic", lambda: clock[0])
    with app.app_context():
        _goal_and_poll()
        client = app.test_client()
        first = client.get("/embed/goals")
        make_patron()
        db.session.commit()
        with statements() as seen:
            again = client.get("/embed/goals")
            not_modified = client.get(
                "/embed/goals", headers={"If-None-Match": first.headers["ETag"]}
            )
        assert seen == []
        assert again.get_data() == first.get_data() and not_modified.status_code == 304
        assert _frame_ancestors(again) == "'self'"
        clock[0] += 1.01
        later = client.get("/embed/goals")
        assert "1 of 100 patrons" in text(later) and later.headers["ETag"] != first.headers["ETag"]
