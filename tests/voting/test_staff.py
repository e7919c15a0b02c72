"""Staff run polls and review topics over HTTP: every action audited, bad requests refused."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from supporters.audit import AuditEntry
from supporters.extensions import db
from supporters.members.models import Member, Role
from supporters.voting import ballots
from supporters.voting.models import Poll, PollState, Topic, TopicStatus, Weighting
from tests.factories import make_member
from tests.helpers import csrf_token, submit, text
from tests.voting.conftest import Clock
from tests.voting.factories import (
    make_patron,
    make_poll,
    make_tier,
    make_topic,
    option_ids,
    sign_in,
)


def _staff(app: Flask, role: Role = Role.ADMIN) -> tuple[FlaskClient, Member]:
    member = make_member(role=role, display_name="Eda Editor")
    return sign_in(app.test_client(), member), member


def _actions() -> list[str]:
    return list(db.session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)))


def _post(client: FlaskClient, url: str, **data: object) -> TestResponse:
    return client.post(url, data={"csrf_token": csrf_token(client, "/polls/manage/"), **data})


def test_an_admin_builds_publishes_and_closes_a_poll(app: Flask, clock: Clock) -> None:
    friend, insider = make_tier("Friend"), make_tier("Insider")
    shortlisted = make_topic("Who owns the empty shops?")
    admin, editor = _staff(app)

    response = submit(
        admin,
        "/polls/manage/new",
        question="What should we investigate next?",
        description="Pick one.",
        opens_at="",
        closes_at=(clock.at + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
        max_choices="1",
        results_visibility="after_voting",
        weighting="tier",
        weight_cap_percent="40",
        **{
            f"tier_{friend.id}_may_vote": "y",
            f"tier_{friend.id}_weight": "1",
            f"tier_{insider.id}_may_vote": "y",
            f"tier_{insider.id}_weight": "3",
        },
    )
    assert response.status_code == 302, text(response)
    poll = db.session.scalars(sa.select(Poll)).one()
    assert (poll.state, poll.weighting, poll.weight_cap_percent) == (
        PollState.DRAFT,
        Weighting.TIER,
        40,
    )
    assert {(r.tier_id, r.may_vote, r.weight) for r in poll.tier_rules} == {
        (friend.id, True, 1),
        (insider.id, True, 3),
    }
    edit_url = f"/polls/manage/{poll.id}/edit"

    # One topic is not a choice: publishing is refused with the reason.
    _post(admin, f"/polls/manage/{poll.id}/options", topic_id=shortlisted.id)
    refused = _post(admin, f"/polls/manage/{poll.id}/publish")
    assert refused.status_code == 400 and "Offer at least two topics." in text(refused)
    _post(admin, f"/polls/manage/{poll.id}/options/new", title="Bridges", pitch="Are they safe?")
    assert _post(admin, f"/polls/manage/{poll.id}/publish").status_code == 302
    db.session.expire_all()
    assert poll.state is PollState.OPEN and poll.opens_at == clock.at

    # Published: the rules are frozen.
    frozen = submit(
        admin,
        edit_url,
        question="Another question",
        max_choices="1",
        results_visibility="always",
        weighting="equal",
    )
    assert frozen.status_code == 409 and "can no longer change" in text(frozen)
    frozen = _post(admin, f"/polls/manage/{poll.id}/options/{poll.options[0].id}/remove")
    assert frozen.status_code == 409

    clock.advance(hours=1)
    assert _post(admin, f"/polls/manage/{poll.id}/close").status_code == 302
    db.session.expire_all()
    assert (poll.state, poll.closed_at) == (PollState.CLOSED, clock.at)
    again = _post(admin, f"/polls/manage/{poll.id}/close")
    assert again.status_code == 302
    assert "Nothing changed" in text(admin.get(edit_url))

    assert _actions() == [
        "poll.created",
        "poll.option_added",
        "topic.created",
        "poll.option_added",
        "poll.published",
        "poll.closed",
    ]
    entries = db.session.scalars(sa.select(AuditEntry)).all()
    assert all(entry.actor_id == editor.id for entry in entries)


def test_bad_poll_settings_are_explained(app: Flask, clock: Clock) -> None:
    admin, _ = _staff(app)
    response = submit(
        admin,
        "/polls/manage/new",
        question="",
        opens_at=clock.at.strftime("%Y-%m-%dT%H:%M"),
        closes_at=(clock.at - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        max_choices="0",
        results_visibility="always",
        weighting="sqrt_amount",
        weight_cap_percent="150",
    )
    page = text(response)
    assert response.status_code == 400
    assert "Ask a question." in page
    assert "Enter a number from 1 to 10." in page
    assert "Enter a percentage from 1 to 100." in page
    assert db.session.scalars(sa.select(Poll)).all() == []


def test_members_and_staff_cannot_manage_polls(app: Flask, clock: Clock) -> None:
    poll = make_poll()
    member = sign_in(app.test_client(), make_patron())
    staff, _ = _staff(app, Role.STAFF)
    for url in ("/polls/manage/", f"/polls/manage/{poll.id}/votes"):
        assert member.get(url).status_code == 403
        assert staff.get(url).status_code == 200
    for url in ("/polls/manage/new", f"/polls/manage/{poll.id}/edit", "/polls/manage/topics"):
        assert member.get(url).status_code == 403
        assert staff.get(url).status_code == 403
    assert app.test_client().get("/polls/manage/").status_code == 302
    response = staff.post(
        f"/polls/manage/{poll.id}/close", data={"csrf_token": csrf_token(staff, "/polls/manage/")}
    )
    assert response.status_code == 403
    assert _actions() == []


def test_staff_see_who_voted_for_what_and_download_it(app: Flask, clock: Clock) -> None:
    poll = make_poll(weighting=Weighting.SQRT_AMOUNT)
    a, b, _ = option_ids(poll)
    sly = make_patron(amount=400, display_name='=HYPERLINK("http://evil")')
    ballots.cast_vote(poll, sly, [a])
    ballots.cast_vote(poll, make_patron(amount=900, display_name="Olena"), [b])
    staff, editor = _staff(app, Role.STAFF)

    page = text(staff.get(f"/polls/manage/{poll.id}/votes"))
    assert "Olena" in page and "3.00" in page

    url = f"/polls/manage/{poll.id}/votes.csv"
    # A link followed from elsewhere (a chat, an email, another site, a typed address) leads
    # to the votes page, whose download link is audited: another site cannot make a GET write.
    for elsewhere in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "none"},
        {"Referer": "https://elsewhere.example/chat"},
        {},
    ):
        away = staff.get(url, headers=elsewhere)
        assert away.status_code == 303
        assert away.headers["Location"].endswith(f"/polls/manage/{poll.id}/votes")
    assert "downloads are recorded in the audit log" in text(staff.get(away.headers["Location"]))
    assert db.session.scalars(sa.select(AuditEntry)).all() == []

    response = staff.get(url, headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(text(response))))
    assert [(r["name"], r["choices"], r["weight"]) for r in rows] == [
        ('\'=HYPERLINK("http://evil")', "Schools", "2.000000"),  # not run as a formula
        ("Olena", "Housing", "3.000000"),
    ]
    entry = db.session.scalars(sa.select(AuditEntry)).one()
    assert (entry.action, entry.actor_id, entry.details) == (
        "poll.votes_exported",
        editor.id,
        {"ballots": 2},
    )
    # A browser without Sec-Fetch-Site: the Referer of our own page says the same.
    older = staff.get(url, headers={"Referer": f"http://localhost/polls/manage/{poll.id}/votes"})
    assert older.status_code == 200 and older.mimetype == "text/csv"
    assert len(db.session.scalars(sa.select(AuditEntry)).all()) == 2

    member = sign_in(app.test_client(), make_patron())
    assert member.get(f"/polls/manage/{poll.id}/votes.csv").status_code == 403


def _closed_poll_won_by(title: str, clock: Clock) -> tuple[Poll, Topic]:
    poll = make_poll((title, "Runner-up"))
    a, b = option_ids(poll)
    for chosen in (a, a, b):
        ballots.cast_vote(poll, make_patron(), [chosen])
    poll.state = PollState.CLOSED
    poll.closed_at = clock.at
    db.session.commit()
    return poll, poll.options[0].topic


def test_an_editor_declines_the_winner_only_with_a_public_reason(app: Flask, clock: Clock) -> None:
    poll, winner = _closed_poll_won_by("The tram budget", clock)
    runner_up = poll.options[1].topic
    admin, _ = _staff(app)
    url = f"/polls/manage/{poll.id}/decline"

    short = _post(admin, url, topic_id=winner.id, reason="No.")
    assert short.status_code == 400 and "Write between 10 and 2000 characters." in text(short)
    loser = _post(admin, url, topic_id=runner_up.id, reason="We prefer the other one, sorry.")
    assert loser.status_code == 400
    reason = "The audit office publishes its own review next month; we will report on that."
    assert _post(admin, url, topic_id=winner.id, reason=reason).status_code == 302

    db.session.expire_all()
    assert (winner.status, winner.status_reason, poll.decline_reason) == (
        TopicStatus.DECLINED,
        reason,
        reason,
    )
    public = text(app.test_client().get(f"/polls/{poll.id}"))
    assert "Our editors decided not to cover the winning topic." in public
    assert reason.replace("'", "&#39;") in public
    assert _actions() == ["topic.decline", "poll.winner_declined"]


def test_proposals_are_for_patrons(app: Flask, clock: Clock) -> None:
    visitor = app.test_client()
    page = text(visitor.get("/polls/propose"))
    assert "Become a patron" in page and "Send my proposal" not in page
    token = csrf_token(visitor, "/sign-in")
    assert visitor.post("/polls/propose", data={"csrf_token": token}).status_code == 302

    member = sign_in(app.test_client(), make_member())
    response = member.post(
        "/polls/propose",
        data={"csrf_token": csrf_token(member, "/polls/"), "title": "T", "pitch": "P"},
    )
    assert response.status_code == 403 and "Only patrons can propose topics." in text(response)
    assert db.session.scalars(sa.select(Topic)).all() == []


def test_a_patron_proposes_and_sees_what_became_of_it(app: Flask, clock: Clock) -> None:
    patron = make_patron()
    client = sign_in(app.test_client(), patron)
    bad = submit(
        client,
        "/polls/propose",
        title="Library hours",
        pitch="Why closed?",
        link_url="javascript:alert(1)",
    )
    assert bad.status_code == 400 and "https://" in text(bad)
    titles = ["Library hours", "Airport noise", "Student rents", "Bridges", "Pizza"]
    for title in titles:
        response = submit(
            client,
            "/polls/propose",
            title=title,
            pitch="Please look into it.",
            link_url="https://example.org/report",
        )
        assert response.status_code == 302
    sixth = submit(client, "/polls/propose", title="Sixth", pitch="One more.")
    assert sixth.status_code == 403 and "5 proposals waiting" in text(sixth)

    topics = {t.title: t for t in db.session.scalars(sa.select(Topic))}
    existing = make_topic("Flight paths over the city")
    admin, _ = _staff(app)
    assert (
        _post(admin, f"/polls/manage/topics/{topics['Library hours'].id}/approve").status_code
        == 302
    )
    reason = "A fun idea, but we keep patron votes for public-interest reporting."
    _post(admin, f"/polls/manage/topics/{topics['Pizza'].id}/reject", **{"reject-reason": reason})
    _post(admin, f"/polls/manage/topics/{topics['Airport noise'].id}/merge", into=existing.id)
    # A rejected proposal cannot be approved later without someone noticing.
    late = _post(admin, f"/polls/manage/topics/{topics['Pizza'].id}/approve")
    assert late.status_code == 409 and "not taken up" in text(late)

    page = text(client.get("/polls/proposals"))
    assert "shortlisted" in page and "waiting for review" in page
    assert "Our editors' answer: A fun idea" in page
    assert "It joined a similar topic: “Flight paths over the city”." in page
    assert _actions() == ["topic.approve", "topic.reject", "topic.merge"]
    db.session.expire_all()
    assert topics["Airport noise"].merged_into_id == existing.id


def test_a_topic_goes_from_shortlist_to_published_and_is_listed(app: Flask, clock: Clock) -> None:
    poll, winner = _closed_poll_won_by("Who owns the empty shops?", clock)
    admin, _ = _staff(app)
    base = f"/polls/manage/topics/{winner.id}"
    assert _post(admin, f"{base}/commission").status_code == 302
    bad = _post(admin, f"{base}/publish", article_url="not a link", published_on="2026-01-05")
    assert bad.status_code == 400
    url = "https://news.example.org/who-owns-the-empty-shops"
    assert (
        _post(admin, f"{base}/publish", article_url=url, published_on="2026-01-05").status_code
        == 302
    )
    # Published topics cannot be declined after the fact.
    assert (
        _post(admin, f"{base}/decline", **{"decline-reason": "Changed our minds."}).status_code
        == 409
    )

    reported = text(app.test_client().get("/polls/reported"))
    assert "Who owns the empty shops?" in reported and url in reported
    assert "Chosen by patrons:" in reported and "2 votes, 66.7%" in reported
    poll_page = text(app.test_client().get(f"/polls/{poll.id}"))
    assert "Read the article" in poll_page and url in poll_page
    assert _actions() == ["topic.commission", "topic.publish"]


@pytest.mark.parametrize("action", ["approve", "commission"])
def test_unknown_topics_and_missing_tokens(app: Flask, clock: Clock, action: str) -> None:
    admin, _ = _staff(app)
    topic = make_topic(status=TopicStatus.PROPOSED)
    assert _post(admin, f"/polls/manage/topics/9999/{action}").status_code == 404
    response = admin.post(f"/polls/manage/topics/{topic.id}/{action}")
    assert response.status_code == 400 and "The form expired" in text(response)
    assert _actions() == []
