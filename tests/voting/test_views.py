"""The poll page and the ballot over HTTP: invitations, bad input, results privacy, the clock."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from supporters.audit import AuditEntry
from supporters.billing.models import Subscription, SubscriptionStatus
from supporters.extensions import db
from supporters.members.models import Role
from supporters.voting import ballots
from supporters.voting.models import Poll, PollState, ResultsVisibility, Vote, VoteChoice
from tests.factories import make_member
from tests.helpers import csrf_token, text
from tests.voting.conftest import Clock
from tests.voting.factories import make_patron, make_poll, make_subscription, option_ids, sign_in


def _stored() -> list[tuple[int, int, tuple[int, ...]]]:
    rows = db.session.execute(
        sa.select(Vote.poll_id, Vote.member_id, VoteChoice.option_id)
        .join(VoteChoice, VoteChoice.vote_id == Vote.id)
        .order_by(Vote.id, VoteChoice.option_id)
    ).all()
    ballots: dict[tuple[int, int], list[int]] = {}
    for poll_id, member_id, option_id in rows:
        ballots.setdefault((poll_id, member_id), []).append(option_id)
    return [(p, m, tuple(o)) for (p, m), o in ballots.items()]


def _vote(
    client: FlaskClient, poll_id: int, *options: object, token: str | None = None
) -> TestResponse:
    """Post a ballot; ``token=""`` leaves the CSRF token out."""
    data: dict[str, object] = {"option": list(options)}
    if token != "":
        data["csrf_token"] = token or csrf_token(client, f"/polls/{poll_id}")
    return client.post(f"/polls/{poll_id}/vote", data=data)


def test_a_patron_votes_sees_results_and_changes_the_vote(app: Flask, clock: Clock) -> None:
    poll = make_poll()
    a, b, _ = option_ids(poll)
    patron = make_patron()
    client = sign_in(app.test_client(), patron)

    page = text(client.get(f"/polls/{poll.id}"))
    assert "Cast my vote" in page and "Results appear here once you have voted." in page
    response = _vote(client, poll.id, a)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/polls/{poll.id}#results")
    page = text(client.get(f"/polls/{poll.id}"))
    assert "Thank you: your vote is counted." in page
    assert "1 patron voted" in page and "Change my vote" in page
    assert f'value="{a}" checked' in page

    clock.advance(minutes=5)
    assert _vote(client, poll.id, b).status_code == 303
    assert "Your vote is changed." in text(client.get(f"/polls/{poll.id}"))
    assert _stored() == [(poll.id, patron.id, (b,))]


@pytest.mark.parametrize(
    ("who", "message", "button", "link"),
    [
        ("visitor", "Sign in as a patron to vote.", "Become a patron to vote", "/"),
        ("member", "Only patrons can vote.", "Become a patron to vote", "/"),
        ("lapsed", "Your support has lapsed", "Renew your support", "/"),
        # Still subscribed: joining again is refused, so the way back is a working card.
        ("on hold", "your benefits are paused", "Update your card", "/account/support"),
    ],
)
def test_people_who_may_not_vote_see_the_poll_and_an_invitation(
    app: Flask, clock: Clock, who: str, message: str, button: str, link: str
) -> None:
    poll = make_poll()
    client = app.test_client()
    if who != "visitor":
        member = make_member()
        if who == "lapsed":
            make_subscription(member, status=SubscriptionStatus.CANCELED)
        if who == "on hold":
            make_subscription(member, status=SubscriptionStatus.UNPAID)
        sign_in(client, member)
    db.session.commit()
    response = client.get(f"/polls/{poll.id}")
    page = text(response)
    assert response.status_code == 200
    assert message in page and button in page
    assert f'<a class="button" href="{link}">' in page
    assert all(title in page for title in ("Schools", "Housing", "Transport"))
    assert "/vote" not in page  # no ballot form


def test_drafts_are_invisible_except_to_staff(app: Flask, clock: Clock) -> None:
    draft = make_poll(state=PollState.DRAFT)
    patron = make_patron()
    editor = make_member(role=Role.STAFF)
    db.session.commit()
    assert app.test_client().get(f"/polls/{draft.id}").status_code == 404
    patron_client = sign_in(app.test_client(), patron)
    assert patron_client.get(f"/polls/{draft.id}").status_code == 404
    assert draft.question not in text(patron_client.get("/polls/"))
    staff_page = sign_in(app.test_client(), editor).get(f"/polls/{draft.id}")
    assert staff_page.status_code == 200 and "Draft: patrons cannot see" in text(staff_page)


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("closed poll", 409, "This poll has closed"),
        ("scheduled poll", 409, "This poll has not opened yet."),
        ("draft poll", 404, "Page not found"),
        ("unknown poll", 404, "Page not found"),
        ("option of another poll", 400, "That choice is not one of this poll&#39;s topics."),
        ("too many choices", 400, "You can choose only 1 topic in this poll."),
        ("no choice", 400, "Choose at least one topic."),
        ("not a number", 400, "That choice is not one of this poll&#39;s topics."),
        ("lapsed member", 403, "Your support has lapsed"),
        ("missing CSRF token", 400, "The form expired"),
    ],
)
def test_bad_ballots_get_a_clear_message_and_change_nothing(
    app: Flask, clock: Clock, case: str, status: int, message: str
) -> None:
    poll = make_poll()
    other = make_poll(("Elsewhere",))
    a, b, _ = option_ids(poll)
    patron = make_patron()
    client = sign_in(app.test_client(), patron)
    assert _vote(client, poll.id, a).status_code == 303
    target, token = poll.id, None
    options: list[int | str] = [b]
    if case == "closed poll":
        db.session.execute(sa.update(Poll).values(state=PollState.CLOSED))
    elif case == "scheduled poll":
        target = make_poll(state=PollState.SCHEDULED, opens_at=clock.at + dt.timedelta(days=1)).id
    elif case == "draft poll":
        target = make_poll(state=PollState.DRAFT).id
    elif case == "unknown poll":
        target = 9999
    elif case == "option of another poll":
        options = [option_ids(other)[0]]
    elif case == "too many choices":
        options = [a, b]
    elif case == "no choice":
        options = []
    elif case == "not a number":
        options = ["first"]
    elif case == "lapsed member":
        db.session.execute(sa.update(Subscription).values(status=SubscriptionStatus.CANCELED))
    elif case == "missing CSRF token":
        token = ""
    db.session.commit()
    before = _stored()
    if token is None:
        token = csrf_token(client, "/polls/")
    response = _vote(client, target, *options, token=token)
    assert response.status_code == status, text(response)
    assert message in text(response)
    assert _stored() == before == [(poll.id, patron.id, (a,))]


def test_visitors_must_sign_in_to_post_a_ballot(app: Flask, clock: Clock) -> None:
    poll = make_poll()
    db.session.commit()
    client = app.test_client()
    response = _vote(client, poll.id, option_ids(poll)[0], token=csrf_token(client, "/sign-in"))
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    assert _stored() == []


def _results_shown(page: str) -> bool:
    return "patrons voted" in page or "patron voted" in page or "<progress" in page


@pytest.mark.parametrize(
    ("visibility", "before_voting", "after_voting", "after_closing"),
    [
        (ResultsVisibility.AFTER_VOTING, False, True, True),
        (ResultsVisibility.AFTER_CLOSING, False, False, True),
        (ResultsVisibility.ALWAYS, True, True, True),
    ],
)
def test_results_stay_private_until_the_poll_allows(
    app: Flask,
    clock: Clock,
    visibility: ResultsVisibility,
    before_voting: bool,
    after_voting: bool,
    after_closing: bool,
) -> None:
    poll = make_poll(results_visibility=visibility)
    a, b, _ = option_ids(poll)
    others = [make_patron() for _ in range(3)]
    for other in others:
        ballots.cast_vote(poll, other, [b])
    patron = make_patron()
    db.session.commit()
    client = sign_in(app.test_client(), patron)
    visitor = app.test_client()

    page = text(client.get(f"/polls/{poll.id}"))
    assert _results_shown(page) is before_voting
    assert ("60.0%" in page or "100.0%" in page) is before_voting
    assert _results_shown(text(visitor.get(f"/polls/{poll.id}"))) is before_voting

    _vote(client, poll.id, a)
    assert _results_shown(text(client.get(f"/polls/{poll.id}"))) is after_voting

    clock.advance(days=8)
    page = text(client.get(f"/polls/{poll.id}"))
    assert _results_shown(page) is after_closing
    assert "Patrons chose: Housing" in page
    assert _results_shown(text(visitor.get(f"/polls/{poll.id}"))) is after_closing
    # Members never see who voted for what.
    assert all(other.email not in page for other in others)


def test_the_clock_opens_and_closes_the_poll_and_reading_it_writes_nothing(
    app: Flask, clock: Clock
) -> None:
    poll = make_poll(
        state=PollState.SCHEDULED,
        opens_at=clock.at + dt.timedelta(hours=1),
        closes_at=clock.at + dt.timedelta(days=1),
    )
    a, b, _ = option_ids(poll)
    patron = make_patron()
    leaving = make_member()
    paid_until = clock.at + dt.timedelta(days=1, hours=6)  # six hours after the closing
    leaving_subscription = make_subscription(leaving, current_period_end=paid_until)
    client = sign_in(app.test_client(), patron)
    visitor = app.test_client()
    assert "Voting opens" in text(client.get(f"/polls/{poll.id}"))
    assert _vote(client, poll.id, a).status_code == 409

    clock.advance(hours=2)
    assert "Cast my vote" in text(client.get(f"/polls/{poll.id}"))
    assert _vote(client, poll.id, a).status_code == 303

    clock.advance(days=2)
    # After the closing: one patron's support ends with the paid period that covered the
    # closing, and two readers join. None of it changes the closed poll's turnout.
    leaving_subscription.status = SubscriptionStatus.CANCELED
    leaving_subscription.ended_at = paid_until
    for _ in range(2):
        make_subscription(make_member(), started_at=clock.at, created_at=clock.at)
    db.session.commit()
    assert "Past polls" in text(visitor.get("/polls/"))
    page = text(visitor.get(f"/polls/{poll.id}"))
    assert "Patrons chose: Schools" in page
    assert "a turnout of 50.0% among the 2 patrons who may vote" in page
    response = _vote(client, poll.id, b)
    assert response.status_code == 409 and "This poll has closed" in text(response)

    # The clock decided; reading the poll wrote nothing.
    db.session.expire_all()
    stored = db.session.get(Poll, poll.id)
    assert stored is not None
    assert (stored.state, stored.closed_at, stored.eligible_count) == (
        PollState.SCHEDULED,
        None,
        None,
    )
    assert db.session.scalars(sa.select(AuditEntry)).all() == []
    assert _stored() == [(poll.id, patron.id, (a,))]
