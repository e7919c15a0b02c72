"""The voting loop by email: a poll opened for you, a poll's results, what became of your
proposal, and the story published on the topic you voted for. Messages are in
templates/emails/voting/.

All of it is optional mail: each kind is a topic members may stop (registered here, offered
on their account page), and each message carries its one-click unsubscribe link. Polls open and
close by the clock, with no write (see ``clock``), so a job that runs every minute finds the
polls whose opening or results are not announced yet; it marks a poll announced with a
conditional UPDATE that one worker alone wins, in the transaction that queues the messages, and
each message has a key naming the poll and the member: announced once, however many workers
run. A poll that opened or closed more than a day before anyone looked (no worker ran) is not
announced late.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_babel import format_decimal
from flask_babel import lazy_gettext as _l

from supporters import jobs, web
from supporters.db import rows_matched
from supporters.extensions import db
from supporters.members.emails import members_wanting, send_to_member
from supporters.members.preferences import MailTopic, register_topic
from supporters.voting import clock
from supporters.voting.eligibility import entitled_member_ids
from supporters.voting.models import (
    Poll,
    PollOption,
    PollState,
    Topic,
    TopicStatus,
    Vote,
    VoteChoice,
)
from supporters.voting.results import compute_results, percent, votes

log = logging.getLogger(__name__)

ANNOUNCE = "voting.announcements"
PUBLISHED = "voting.topic_published"

POLLS = MailTopic(
    "polls",
    _l("A poll I may vote in opens"),
    _l("With the topics to choose from, and when it closes."),
)
RESULTS = MailTopic(
    "results",
    _l("The results of polls"),
    _l("When a poll I voted in, or could have, closes."),
)
PROPOSALS = MailTopic(
    "proposals",
    _l("What becomes of my proposals"),
    _l("Shortlisted for a vote, merged with another topic, or not taken up, and why."),
)
COVERAGE = MailTopic(
    "coverage",
    _l("Stories on topics I voted for"),
    _l("The article, once it is published."),
)

#: A poll's opening or closing is news for this long; after it, it is not announced.
ANNOUNCE_WITHIN = dt.timedelta(days=1)


def init_app(app: Flask) -> None:
    """Offer the voting loop's mail, and look for polls to announce every minute."""
    for topic in (POLLS, RESULTS, PROPOSALS, COVERAGE):
        register_topic(app, topic)
    jobs.register_handler(app, ANNOUNCE, announce_polls)
    jobs.register_periodic(app, ANNOUNCE, every=dt.timedelta(minutes=1), kind=ANNOUNCE)
    jobs.register_handler(app, PUBLISHED, announce_published)


def _poll_url(poll: Poll) -> str:
    return web.external_url("voting.show_poll", poll_id=poll.id)


# -- polls opening and closing ------------------------------------------------------------------


def announce_polls(payload: dict[str, Any]) -> None:
    """The job: announce the polls that opened, and the results of those that closed."""
    at = clock.now()
    opened = db.session.scalars(
        sa.select(Poll.id).where(
            Poll.state.in_((PollState.SCHEDULED, PollState.OPEN)),
            Poll.opening_announced_at.is_(None),
            Poll.opens_at <= at,
            Poll.opens_at > at - ANNOUNCE_WITHIN,
            sa.or_(Poll.closes_at.is_(None), Poll.closes_at > at),
        )
    ).all()
    closed = db.session.scalars(
        sa.select(Poll.id).where(
            Poll.state != PollState.DRAFT,
            Poll.results_announced_at.is_(None),
            Poll.closed_by(at),
            sa.func.coalesce(Poll.closed_at, Poll.closes_at) > at - ANNOUNCE_WITHIN,
        )
    ).all()
    for poll_id in opened:
        if _claim(poll_id, Poll.opening_announced_at, at):
            _announce_opening(_poll(poll_id), at)
    for poll_id in closed:
        if _claim(poll_id, Poll.results_announced_at, at):
            _announce_results(_poll(poll_id), at)


def _claim(poll_id: int, column: Any, at: dt.datetime) -> bool:
    """Mark a poll announced, unless another run has: True for the one run that does.

    On PostgreSQL a second worker's UPDATE waits for the first's row lock, then matches nothing.
    """
    result = db.session.execute(
        sa.update(Poll)
        .where(Poll.id == poll_id, column.is_(None))
        .values({column.key: at})
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result) == 1


def _poll(poll_id: int) -> Poll:
    poll = db.session.get(Poll, poll_id, populate_existing=True)
    assert poll is not None  # just claimed
    return poll


def _announce_opening(poll: Poll, at: dt.datetime) -> None:
    """Tell each patron who may vote in the poll now (and wants to hear) that it is open."""
    recipients = members_wanting(POLLS.key, entitled_member_ids(poll, at))
    for member in recipients:
        send_to_member(
            member,
            "emails/voting/poll_opened",
            subject=_l("A new poll: %(question)s", question=poll.question),
            kind="voting.poll_opened",
            context={"poll": poll, "poll_url": _poll_url(poll)},
            topic=POLLS.key,
            key=f"voting.poll-opened:{poll.id}:{member.id}",
            checked=True,
        )
    log.info("poll %d opened: told %d patron(s)", poll.id, len(recipients))


def _announce_results(poll: Poll, at: dt.datetime) -> None:
    """Send a closed poll's results to those who voted in it and those who could have."""
    outcome = compute_results(poll, PollState.CLOSED, at, with_turnout=False)
    voters = set(db.session.scalars(sa.select(Vote.member_id).where(Vote.poll_id == poll.id)))
    recipients = members_wanting(RESULTS.key, voters | set(entitled_member_ids(poll, at)))
    standings = [
        {
            "title": result.topic.title,
            "votes": votes(result.weight),
            "percent": percent(result.share),
            "is_winner": result.is_winner,
        }
        for result in outcome.options
    ]
    winners = [result.topic.title for result in outcome.winners]
    for member in recipients:
        send_to_member(
            member,
            "emails/voting/poll_results",
            subject=_l("The results: %(question)s", question=poll.question),
            kind="voting.poll_results",
            context={
                "poll": poll,
                "poll_url": _poll_url(poll),
                "standings": standings,
                "winners": winners,
                "ballots": outcome.ballots,
                "has_voted": member.id in voters,
                "format_decimal": format_decimal,
            },
            topic=RESULTS.key,
            key=f"voting.poll-results:{poll.id}:{member.id}",
            checked=True,
        )
    log.info("poll %d closed: results sent to %d member(s)", poll.id, len(recipients))


# -- topics -------------------------------------------------------------------------------------


def proposal_decided(topic: Topic) -> None:
    """Tell a patron what became of their proposal (its status now, with the reason)."""
    proposer = topic.proposed_by
    if proposer is None:
        return
    subjects = {
        TopicStatus.SHORTLISTED: _l("Your proposal is shortlisted: %(title)s", title=topic.title),
        TopicStatus.MERGED: _l("Your proposal joins another topic: %(title)s", title=topic.title),
        TopicStatus.REJECTED: _l("About your proposal: %(title)s", title=topic.title),
        TopicStatus.DECLINED: _l("We will not cover your proposal: %(title)s", title=topic.title),
    }
    subject = subjects.get(topic.status)
    if subject is None:
        return
    send_to_member(
        proposer,
        "emails/voting/proposal_decided",
        subject=subject,
        kind="voting.proposal_decided",
        context={
            "topic": topic,
            "status": topic.status.value,
            "merged_into": topic.merged_into,
            "proposals_url": web.external_url("voting.list_proposals"),
        },
        topic=PROPOSALS.key,
    )


def topic_published(topic: Topic) -> None:
    """Queue the news of a topic's first publication to those who voted for it (a job: they
    may be thousands, and the editor's request should not wait for them)."""
    jobs.enqueue(PUBLISHED, {"topic_id": topic.id}, key=f"{PUBLISHED}:{topic.id}")


def _voters_for(topic_id: int) -> Iterable[int]:
    return db.session.scalars(
        sa.select(Vote.member_id)
        .join(VoteChoice, VoteChoice.vote_id == Vote.id)
        .join(PollOption, PollOption.id == VoteChoice.option_id)
        .where(PollOption.topic_id == topic_id)
        .distinct()
    )


def announce_published(payload: dict[str, Any]) -> None:
    """The job: tell everyone who voted for a topic (and its proposer) that the story is out."""
    topic = db.session.get(Topic, int(payload["topic_id"]))
    if topic is None or topic.status is not TopicStatus.PUBLISHED or not topic.article_url:
        return
    readers = set(_voters_for(topic.id))
    if topic.proposed_by_id is not None:
        readers.add(topic.proposed_by_id)
    recipients = members_wanting(COVERAGE.key, readers)
    for member in recipients:
        send_to_member(
            member,
            "emails/voting/topic_published",
            subject=_l("The story is out: %(title)s", title=topic.title),
            kind="voting.topic_published",
            context={
                "topic": topic,
                "is_proposer": member.id == topic.proposed_by_id,
                "reported_url": web.external_url("voting.list_reported"),
            },
            topic=COVERAGE.key,
            key=f"voting.topic-published:{topic.id}:{member.id}",
            checked=True,
        )
    log.info("topic %d published: told %d member(s)", topic.id, len(recipients))
