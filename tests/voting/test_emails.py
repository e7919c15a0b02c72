"""The voting loop by email: a poll opened for you, its results, what became of your proposal,
the story on the topic you voted for. Optional mail: each kind can be stopped, and is sent to
each member once, however many workers look."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask

from supporters import audit
from supporters.billing.models import SubscriptionStatus
from supporters.extensions import db
from supporters.jobs.worker import Worker
from supporters.members import preferences
from supporters.members.models import Role
from supporters.voting import ballots, polls, topics
from supporters.voting.models import Poll, PollState, TopicStatus
from tests.billing.test_emails import html, links
from tests.factories import make_member
from tests.jobs.test_schedule import run_side_by_side
from tests.smtp import MailServer, body
from tests.voting.conftest import Clock
from tests.voting.factories import (
    make_patron,
    make_poll,
    make_subscription,
    make_tier,
    make_topic,
    option_ids,
)

EDITOR = audit.Actor(None)


def _run_the_minute_job(app: Flask, clock: Clock) -> None:
    """The next minute's run of the announcements, taken by two workers side by side."""
    clock.advance(minutes=1)
    run_side_by_side([Worker(app, clock=clock), Worker(app, clock=clock)])


def _to(mail_server: MailServer, kind: str) -> list[str]:
    return sorted(str(m["To"]) for m in mail_server.messages if kind in str(m["Subject"]))


def test_a_poll_is_announced_to_each_patron_who_may_vote_within_a_minute_of_opening(
    app: Flask, clock: Clock, mail_server: MailServer
) -> None:
    readers, others = make_tier("Reader"), make_tier("Other")
    make_patron(readers, email="ada@example.org", display_name="Ada")
    make_patron(others, email="ben@example.org")
    make_patron(readers, status=SubscriptionStatus.CANCELED, email="lapsed@example.org")
    on_hold = make_member("on-hold@example.org")
    make_subscription(
        on_hold,
        readers,
        status=SubscriptionStatus.PAST_DUE,
        current_period_start=clock.at - dt.timedelta(days=30),
    )
    make_member("reader@example.org")  # never a patron
    make_member("editor@example.org", role=Role.ADMIN)
    poll = make_poll(
        ("Schools", "Housing"),
        state=PollState.DRAFT,
        opens_at=clock.at + dt.timedelta(seconds=30),
        closes_at=clock.at + dt.timedelta(days=7),
        question="What should we investigate next?",
    )
    restricted = make_poll(
        ("Trams", "Bridges"),
        state=PollState.DRAFT,
        opens_at=clock.at + dt.timedelta(seconds=30),
        closes_at=clock.at + dt.timedelta(days=7),
        question="Readers only: which transport story?",
        is_restricted_to_tiers=True,
        tier_rules=[(readers, True, 1), (others, False, 1)],
    )
    assert polls.publish_poll(poll, EDITOR) is PollState.SCHEDULED
    polls.publish_poll(restricted, EDITOR)
    db.session.commit()

    run_side_by_side([Worker(app, clock=clock), Worker(app, clock=clock)])
    assert mail_server.messages == []  # not open yet

    _run_the_minute_job(app, clock)
    _run_the_minute_job(app, clock)
    assert _to(mail_server, "A new poll: What should") == ["ada@example.org", "ben@example.org"]
    assert _to(mail_server, "A new poll: Readers only") == ["ada@example.org"]
    message = next(m for m in mail_server.to("ada@example.org") if "investigate" in m["Subject"])
    assert "Hello Ada," in body(message) and "- Schools" in body(message)
    assert f"http://localhost/polls/{poll.id}" in links(message)
    assert f'href="http://localhost/polls/{poll.id}"' in html(message)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_an_unsubscribe_link_in_a_poll_message_stops_the_next_ones(
    app: Flask, clock: Clock, mail_server: MailServer
) -> None:
    make_patron(email="ada@example.org")
    make_poll(opens_at=clock.at - dt.timedelta(minutes=5), question="First poll")
    db.session.commit()
    _run_the_minute_job(app, clock)
    [message] = mail_server.to("ada@example.org")
    link = str(message["List-Unsubscribe"]).strip().strip("<>")
    assert link in links(message)  # also in the text, for whoever reads it there
    assert app.test_client().post(link.removeprefix("http://localhost")).status_code == 200

    make_poll(opens_at=clock.at, question="Second poll")
    db.session.commit()
    _run_the_minute_job(app, clock)
    assert len(mail_server.to("ada@example.org")) == 1


def test_results_go_to_voters_and_patrons_when_a_poll_closes(
    app: Flask, clock: Clock, mail_server: MailServer
) -> None:
    voter = make_patron(email="voter@example.org")
    make_patron(email="abstained@example.org")
    poll = make_poll(
        ("Schools", "Housing"),
        opens_at=clock.at - dt.timedelta(days=2),
        closes_at=clock.at + dt.timedelta(minutes=2),
        question="Which first?",
        opening_announced_at=clock.at - dt.timedelta(days=2),
    )
    schools, housing = option_ids(poll)
    ballots.cast_vote(poll, voter, [schools])
    ballots.cast_vote(poll, make_patron(email="second@example.org"), [schools])
    ballots.cast_vote(poll, make_patron(email="third@example.org"), [housing])
    db.session.commit()

    _run_the_minute_job(app, clock)
    assert mail_server.messages == []  # still open
    _run_the_minute_job(app, clock)
    _run_the_minute_job(app, clock)
    assert _to(mail_server, "The results: Which first?") == [
        "abstained@example.org",
        "second@example.org",
        "third@example.org",
        "voter@example.org",
    ]
    [result] = mail_server.to("voter@example.org")
    text = body(result)
    assert "Thank you for your vote!" in text and "The patrons chose: Schools." in text
    assert re.search(r"- Schools: 2 votes \(66\.7%\)", text), text
    assert "- Housing: 1 vote (33.3%)" in text
    assert "A poll you could vote in has closed." in body(
        mail_server.to("abstained@example.org")[0]
    )


def test_a_poll_staff_close_early_has_its_results_sent_once(
    app: Flask, clock: Clock, mail_server: MailServer
) -> None:
    voter = make_patron(email="voter@example.org")
    poll = make_poll(opening_announced_at=clock.at, question="Closed early?")
    ballots.cast_vote(poll, voter, [option_ids(poll)[0]])
    db.session.commit()
    assert polls.close_poll(poll, EDITOR)
    db.session.commit()
    _run_the_minute_job(app, clock)
    _run_the_minute_job(app, clock)
    assert _to(mail_server, "The results: Closed early?") == ["voter@example.org"]


def test_a_proposer_hears_what_became_of_each_proposal_with_the_reason(
    app: Flask, clock: Clock, mail_server: MailServer
) -> None:
    proposer = make_patron(email="pat@example.org", display_name="Pat")
    shortlisted = topics.propose_topic(proposer, title="Library hours", pitch="", link_url=None)
    turned_down = topics.propose_topic(proposer, title="Pizza", pitch="", link_url=None)
    merged = topics.propose_topic(proposer, title="Airport noise", pitch="", link_url=None)
    existing = make_topic("Flight paths over the city")
    db.session.commit()

    topics.approve_topic(shortlisted, EDITOR)
    topics.reject_topic(turned_down, "We keep patron votes for public-interest reporting.", EDITOR)
    topics.merge_topic(merged, existing, EDITOR)
    topics.approve_topic(shortlisted, EDITOR)  # already so: nothing new to tell
    db.session.commit()

    by_subject = {str(m["Subject"]): m for m in mail_server.to("pat@example.org")}
    assert sorted(by_subject) == [
        "About your proposal: Pizza",
        "Your proposal is shortlisted: Library hours",
        "Your proposal joins another topic: Airport noise",
    ]
    assert "Their reason: We keep patron votes" in body(by_subject["About your proposal: Pizza"])
    joined = body(by_subject["Your proposal joins another topic: Airport noise"])
    assert "Flight paths over the city" in joined
    declined = by_subject["About your proposal: Pizza"]
    assert "http://localhost/polls/proposals" in links(declined)
    assert declined["List-Unsubscribe"] is not None


def test_the_story_is_announced_once_to_those_who_voted_for_it(
    app: Flask, clock: Clock, mail_server: MailServer
) -> None:
    proposer = make_member("pat@example.org")
    poll = make_poll(
        ("Empty shops", "Bus lanes"),
        opening_announced_at=clock.at,
        results_announced_at=clock.at,
    )
    poll.options[0].topic.proposed_by_id = proposer.id
    shops, buses = option_ids(poll)
    for email, chosen in (("a@example.org", shops), ("b@example.org", buses)):
        ballots.cast_vote(poll, make_patron(email=email), [chosen])
    stopped = make_patron(email="stopped@example.org")
    ballots.cast_vote(poll, stopped, [shops])
    preferences.unsubscribe(stopped.id, "coverage")
    poll.state, poll.closed_at = PollState.CLOSED, clock.at
    db.session.commit()
    winner = poll.options[0].topic

    url = "https://news.example.org/empty-shops"
    topics.publish_topic(winner, url, clock.at.date(), EDITOR)
    db.session.commit()
    topics.publish_topic(winner, url + "-corrected", clock.at.date(), EDITOR)  # a correction
    db.session.commit()

    assert _to(mail_server, "The story is out: Empty shops") == [
        "a@example.org",
        "pat@example.org",
    ]
    [story] = mail_server.to("a@example.org")
    # Sent by a job after both: with the article's address as it stands.
    assert url + "-corrected" in links(story)
    assert "The topic you voted for is now a story" in body(story)
    assert "The topic you proposed" in body(mail_server.to("pat@example.org")[0])
    db.session.expire_all()
    assert db.session.get(Poll, poll.id).options[0].topic.status is TopicStatus.PUBLISHED  # type: ignore[union-attr]


def test_polls_that_opened_or_closed_long_before_a_worker_looked_are_not_announced(
    app: Flask, clock: Clock, mail_server: MailServer
) -> None:
    make_patron(email="ada@example.org")
    make_poll(opens_at=clock.at - dt.timedelta(days=3), question="Old news")
    make_poll(
        opens_at=clock.at - dt.timedelta(days=9),
        closes_at=clock.at - dt.timedelta(days=2),
        question="Older news",
    )
    db.session.commit()
    _run_the_minute_job(app, clock)
    assert mail_server.messages == []
