"""Topics: patrons' proposals, staff's review, and each topic's way to a published article.

A topic moves along ``TOPIC_TRANSITIONS``; every move is checked against the state it starts
from (under a row lock) and audited. Services flush and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters import audit
from supporters.audit import Actor
from supporters.billing.membership import is_entitled
from supporters.extensions import db
from supporters.members.models import Member
from supporters.voting import clock, emails, results
from supporters.voting.errors import InvalidPoll, NotEligible, TransitionRefused
from supporters.voting.models import Poll, PollOption, PollState, Topic, TopicStatus

# A patron may have this many proposals waiting for review at once.
MAX_PENDING_PROPOSALS = 5


def find_topic(topic_id: int) -> Topic | None:
    """A topic by id, whatever its status."""
    return db.session.get(Topic, topic_id)


def proposals_of(member_id: int) -> list[Topic]:
    """What one patron proposed, newest first."""
    return list(
        db.session.scalars(
            sa.select(Topic)
            .where(Topic.proposed_by_id == member_id)
            .order_by(Topic.created_at.desc(), Topic.id.desc())
        )
    )


def published_polls_by_topic(topic_ids: Sequence[int]) -> dict[int, list[Poll]]:
    """For each topic, the published polls (not drafts) that offer it, oldest first."""
    offered = db.session.execute(
        sa.select(PollOption.topic_id, Poll)
        .join(Poll, Poll.id == PollOption.poll_id)
        .where(PollOption.topic_id.in_(topic_ids), Poll.state != PollState.DRAFT)
        .order_by(Poll.id)
    ).all()
    polls_by_topic: dict[int, list[Poll]] = {}
    for topic_id, poll in offered:
        polls_by_topic.setdefault(topic_id, []).append(poll)
    return polls_by_topic


def polls_offering(topic_id: int) -> list[Poll]:
    """Every poll that offers the topic, drafts included, oldest first (for staff)."""
    return list(
        db.session.scalars(
            sa.select(Poll)
            .join(PollOption)
            .where(PollOption.topic_id == topic_id)
            .order_by(Poll.id)
        )
    )


def count_waiting() -> int:
    """Proposals waiting for review, from every patron."""
    waiting = db.session.scalar(
        sa.select(sa.func.count()).select_from(Topic).where(Topic.status == TopicStatus.PROPOSED)
    )
    return waiting or 0


def shortlisted_topics() -> list[Topic]:
    """Topics that may be put to a vote, by title."""
    return list(
        db.session.scalars(
            sa.select(Topic).where(Topic.status == TopicStatus.SHORTLISTED).order_by(Topic.title)
        )
    )


def topics_by_status() -> dict[TopicStatus, list[Topic]]:
    """Every topic, newest first, grouped by where it stands."""
    topics = db.session.scalars(sa.select(Topic).order_by(Topic.created_at.desc(), Topic.id.desc()))
    by_status: dict[TopicStatus, list[Topic]] = {}
    for topic in topics:
        by_status.setdefault(topic.status, []).append(topic)
    return by_status


def merge_targets(*, excluding: int | None = None) -> list[Topic]:
    """Topics a proposal may be merged into (any not merged or rejected), by title."""
    query = sa.select(Topic).where(Topic.status.not_in((TopicStatus.MERGED, TopicStatus.REJECTED)))
    if excluding is not None:
        query = query.where(Topic.id != excluding)
    return list(db.session.scalars(query.order_by(Topic.title)))


def may_propose(member: Member | None) -> bool:
    """Patrons (the same ones who may vote) may propose topics."""
    return member is not None and is_entitled(member.id, clock.now())


def propose_topic(member: Member, *, title: str, pitch: str, link_url: str | None) -> Topic:
    """A patron's idea for a story, waiting for review.

    :raises NotEligible: not an entitled patron, or too many proposals waiting already.
    """
    if not may_propose(member):
        raise NotEligible(_("Only patrons can propose topics. Become a patron to have your say."))
    waiting = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Topic)
        .where(Topic.proposed_by_id == member.id, Topic.status == TopicStatus.PROPOSED)
    )
    if (waiting or 0) >= MAX_PENDING_PROPOSALS:
        raise NotEligible(
            _(
                "You have %(num)d proposals waiting for review. Please wait for our answer "
                "before you send more.",
                num=MAX_PENDING_PROPOSALS,
            )
        )
    topic = Topic(
        title=title.strip(),
        pitch=pitch.strip(),
        link_url=(link_url or "").strip() or None,
        status=TopicStatus.PROPOSED,
        proposed_by_id=member.id,
        created_at=clock.now(),
    )
    db.session.add(topic)
    db.session.flush()
    return topic


def create_topic(title: str, pitch: str, actor: Actor) -> Topic:
    """A topic written by staff: shortlisted at once, ready to be put to a vote."""
    at = clock.now()
    topic = Topic(
        title=title.strip(),
        pitch=pitch.strip(),
        status=TopicStatus.SHORTLISTED,
        reviewed_by_id=actor.member_id,
        reviewed_at=at,
        created_at=at,
    )
    db.session.add(topic)
    db.session.flush()
    audit.record("topic.created", actor, topic, title=topic.title)
    return topic


# action -> (states it may start from, the state it leads to)
TOPIC_TRANSITIONS: dict[str, tuple[frozenset[TopicStatus], TopicStatus]] = {
    "approve": (frozenset({TopicStatus.PROPOSED}), TopicStatus.SHORTLISTED),
    "reject": (frozenset({TopicStatus.PROPOSED}), TopicStatus.REJECTED),
    "merge": (frozenset({TopicStatus.PROPOSED}), TopicStatus.MERGED),
    "commission": (
        frozenset({TopicStatus.SHORTLISTED, TopicStatus.DECLINED}),
        TopicStatus.COMMISSIONED,
    ),
    "publish": (
        frozenset({TopicStatus.SHORTLISTED, TopicStatus.COMMISSIONED, TopicStatus.PUBLISHED}),
        TopicStatus.PUBLISHED,
    ),
    "decline": (
        frozenset({TopicStatus.SHORTLISTED, TopicStatus.COMMISSIONED}),
        TopicStatus.DECLINED,
    ),
}


def allowed_actions(topic: Topic) -> list[str]:
    """The actions staff may take on the topic where it stands now."""
    return [name for name, (sources, _) in TOPIC_TRANSITIONS.items() if topic.status in sources]


def _lock_topic(topic: Topic) -> Topic:
    """Re-read the topic with a row lock, so two reviewers do not act on a stale status."""
    return db.session.scalars(
        sa.select(Topic)
        .where(Topic.id == topic.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _transition(topic: Topic, action: str, actor: Actor, **changes: Any) -> tuple[Topic, bool]:
    """Move a topic along its way; (topic, False) when it already stood where asked.

    :raises TransitionRefused: the topic's status does not allow the action.
    """
    topic = _lock_topic(topic)
    sources, target = TOPIC_TRANSITIONS[action]
    if topic.status is target and action != "publish":
        return topic, False
    if topic.status not in sources:
        raise TransitionRefused(
            _(
                "This topic is %(status)s now, so it cannot be changed that way.",
                status=topic_status_label(topic.status),
            )
        )
    previous = topic.status
    topic.status = target
    topic.reviewed_by_id = actor.member_id
    topic.reviewed_at = clock.now()
    for key, value in changes.items():
        setattr(topic, key, value)
    db.session.flush()
    details = {
        key: (value.isoformat() if isinstance(value, dt.date) else value)
        for key, value in changes.items()
    }
    audit.record(f"topic.{action}", actor, topic, **{"from": previous.value}, **details)
    return topic, True


def _decided(moved: tuple[Topic, bool]) -> bool:
    """Tell the proposer what became of their proposal, when it moved."""
    topic, changed = moved
    if changed:
        emails.proposal_decided(topic)
    return changed


def approve_topic(topic: Topic, actor: Actor) -> bool:
    """Shortlist a proposal: it may now be put to a vote. Its proposer is told."""
    return _decided(_transition(topic, "approve", actor))


def reject_topic(topic: Topic, reason: str, actor: Actor) -> bool:
    """Turn a proposal down; the reason is shown, and emailed, to the patron who proposed it."""
    return _decided(_transition(topic, "reject", actor, status_reason=reason.strip()))


def merge_topic(topic: Topic, into: Topic, actor: Actor) -> bool:
    """Fold a proposal into an existing topic (the proposer is told which).

    :raises InvalidPoll: merging into itself, or into a topic that is merged or rejected.
    """
    if into.id == topic.id:
        raise InvalidPoll(_("A topic cannot be merged into itself."))
    if into.status in (TopicStatus.MERGED, TopicStatus.REJECTED):
        raise InvalidPoll(_("Merge into a topic that is still open, not a rejected or merged one."))
    return _decided(_transition(topic, "merge", actor, merged_into_id=into.id))


def commission_topic(topic: Topic, actor: Actor) -> bool:
    """A reporter is on it."""
    return _transition(topic, "commission", actor)[1]


def publish_topic(topic: Topic, article_url: str, published_on: dt.date, actor: Actor) -> bool:
    """The story is out: record where and when (again, to correct either). The first time,
    those who voted for the topic are told."""
    was_published = topic.status is TopicStatus.PUBLISHED
    topic, changed = _transition(
        topic,
        "publish",
        actor,
        article_url=article_url.strip(),
        published_on=published_on,
        status_reason="",
    )
    if changed and not was_published:
        emails.topic_published(topic)
    return changed


def decline_topic(topic: Topic, reason: str, actor: Actor) -> bool:
    """Decide not to cover a topic, with a public reason.

    The reason is also published on every closed poll the topic won: an editor may overrule
    the patrons' choice, but only in the open.
    """
    topic, changed = _transition(topic, "decline", actor, status_reason=reason.strip())
    if not changed:
        return False
    emails.proposal_decided(topic)
    at = clock.now()
    won = db.session.scalars(
        sa.select(Poll)
        .join(PollOption, PollOption.poll_id == Poll.id)
        .where(PollOption.topic_id == topic.id, Poll.closed_by(at))
    ).all()
    for poll in won:
        outcome = results.compute_results(poll, PollState.CLOSED, at, with_turnout=False)
        if any(result.option.topic_id == topic.id for result in outcome.winners):
            poll.decline_reason = reason.strip()
            audit.record(
                "poll.winner_declined", actor, poll, topic_id=topic.id, reason=reason.strip()
            )
    db.session.flush()
    return True


def topic_status_label(status: TopicStatus) -> str:
    """A topic's status as patrons and staff read it."""
    labels: dict[TopicStatus, str] = {
        TopicStatus.PROPOSED: _("waiting for review"),
        TopicStatus.REJECTED: _("not taken up"),
        TopicStatus.MERGED: _("merged into another topic"),
        TopicStatus.SHORTLISTED: _("shortlisted"),
        TopicStatus.COMMISSIONED: _("commissioned"),
        TopicStatus.PUBLISHED: _("published"),
        TopicStatus.DECLINED: _("declined"),
    }
    return labels[status]
