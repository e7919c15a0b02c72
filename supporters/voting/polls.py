"""Polls: finding them, and running them (staff): drafts, their settings and topics, publishing,
closing early, declining the winner.

Services flush and never commit; the view or command that calls them commits once. They take
the time from the voting clock (:mod:`supporters.voting.clock`; tests freeze it) and report
refusals as :class:`~supporters.voting.errors.VotingError`s whose message is fit to show.
Rules are frozen once a poll is published, so every ballot is weighed by the same rule.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import joinedload

from supporters import audit
from supporters.audit import Actor
from supporters.billing.models import Tier
from supporters.extensions import db
from supporters.members.models import Member
from supporters.voting import clock, results, topics
from supporters.voting.eligibility import allowed_tier_ids, tier_rules
from supporters.voting.errors import InvalidPoll, PollNotFound, TransitionRefused
from supporters.voting.models import (
    Poll,
    PollOption,
    PollState,
    PollTierRule,
    ResultsVisibility,
    Topic,
    TopicStatus,
    Vote,
    Weighting,
)


@functools.cache
def _poll_query() -> sa.Select[Poll]:
    """A poll with its options in one query (every page and every ballot needs them), built once."""
    return (
        sa.select(Poll).options(joinedload(Poll.options)).where(Poll.id == sa.bindparam("poll_id"))
    )


def get_poll(poll_id: int, *, viewer: Member | None = None) -> tuple[Poll, PollState]:
    """A poll and its current state; drafts exist only for staff.

    :raises PollNotFound: no such poll, or a draft and the viewer is not staff.
    """
    poll = db.session.scalars(_poll_query(), {"poll_id": poll_id}).unique().one_or_none()
    if poll is None or (poll.state is PollState.DRAFT and not (viewer and viewer.is_staff)):
        raise PollNotFound(_("There is no such poll."))
    return poll, clock.observed_state(poll, clock.now())


def visible_polls() -> list[tuple[Poll, PollState]]:
    """Published polls, open ones first, each with its state (observed now)."""
    polls = db.session.scalars(
        sa.select(Poll)
        .where(Poll.state != PollState.DRAFT)
        .order_by(Poll.closes_at.desc().nulls_last(), Poll.id.desc())
    ).all()
    at = clock.now()
    return [(poll, clock.observed_state(poll, at)) for poll in polls]


def find_poll(poll_id: int) -> Poll | None:
    """A poll by id, whatever its state: for staff pages that have loaded it once already."""
    return db.session.get(Poll, poll_id)


def every_poll() -> list[tuple[Poll, PollState]]:
    """Every poll, drafts included, newest first, each with its state (observed now)."""
    polls = db.session.scalars(sa.select(Poll).order_by(Poll.created_at.desc(), Poll.id.desc()))
    at = clock.now()
    return [(poll, clock.observed_state(poll, at)) for poll in polls]


def ballot_counts() -> dict[int, int]:
    """Ballots per poll id (polls without ballots are left out)."""
    return {
        poll_id: count
        for poll_id, count in db.session.execute(
            sa.select(Vote.poll_id, sa.func.count()).group_by(Vote.poll_id)
        )
    }


def rule_tiers() -> list[Tier]:
    """Every tier a poll's rules may name, active or not, in the order staff see them."""
    return list(db.session.scalars(sa.select(Tier).order_by(Tier.position, Tier.monthly_amount)))


@dataclass(frozen=True)
class PollSettings:
    """What staff set on a poll."""

    question: str
    description: str
    opens_at: dt.datetime | None
    closes_at: dt.datetime | None
    max_choices: int
    results_visibility: ResultsVisibility
    weighting: Weighting
    weight_cap_percent: int | None
    is_restricted_to_tiers: bool
    # tier id -> (may vote, weight)
    tier_rules: Mapping[int, tuple[bool, int]]


def _check_times(opens_at: dt.datetime | None, closes_at: dt.datetime | None) -> None:
    if opens_at and closes_at and closes_at <= opens_at:
        raise InvalidPoll(_("The poll must close after it opens."))


def _apply_settings(poll: Poll, settings: PollSettings) -> dict[str, Any]:
    """Write settings onto a draft; returns the fields that changed (for the audit log)."""
    changes: dict[str, Any] = {}
    for name in (
        "question",
        "description",
        "opens_at",
        "closes_at",
        "max_choices",
        "results_visibility",
        "weighting",
        "weight_cap_percent",
        "is_restricted_to_tiers",
    ):
        value = getattr(settings, name)
        if getattr(poll, name) != value:
            changes[name] = value.isoformat() if isinstance(value, dt.datetime) else str(value)
            setattr(poll, name, value)
    rules = tier_rules(poll)
    for tier_id, (may_vote, weight) in settings.tier_rules.items():
        rule = rules.get(tier_id)
        if rule is None:
            rule = PollTierRule(tier_id=tier_id, may_vote=may_vote, weight=weight)
            poll.tier_rules.append(rule)
            changes[f"tier {tier_id}"] = f"may_vote={may_vote} weight={weight}"
        elif (rule.may_vote, rule.weight) != (may_vote, weight):
            rule.may_vote, rule.weight = may_vote, weight
            changes[f"tier {tier_id}"] = f"may_vote={may_vote} weight={weight}"
    return changes


def create_poll(settings: PollSettings, actor: Actor) -> Poll:
    """A new draft poll.

    :raises InvalidPoll: it would close before it opens.
    """
    _check_times(settings.opens_at, settings.closes_at)
    poll = Poll(state=PollState.DRAFT, created_by_id=actor.member_id, created_at=clock.now())
    db.session.add(poll)
    _apply_settings(poll, settings)
    db.session.flush()
    audit.record("poll.created", actor, poll, question=poll.question)
    return poll


def _lock_poll(poll: Poll) -> Poll:
    """Re-read the poll with a row lock, so two editors do not act on a stale state."""
    return db.session.scalars(
        sa.select(Poll)
        .where(Poll.id == poll.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _require_draft(poll: Poll) -> None:
    if poll.state is not PollState.DRAFT:
        raise TransitionRefused(
            _("This poll is published: its settings and topics can no longer change.")
        )


def update_poll(poll: Poll, settings: PollSettings, actor: Actor) -> bool:
    """Change a draft's settings; returns False when nothing changed.

    Rules are frozen once a poll is published, so every ballot is weighed by the same rule.

    :raises TransitionRefused: the poll is no longer a draft.
    :raises InvalidPoll: it would close before it opens.
    """
    poll = _lock_poll(poll)
    _require_draft(poll)
    _check_times(settings.opens_at, settings.closes_at)
    changes = _apply_settings(poll, settings)
    if not changes:
        return False
    db.session.flush()
    audit.record("poll.updated", actor, poll, **changes)
    return True


def add_option(poll: Poll, topic: Topic, actor: Actor) -> PollOption:
    """Offer a shortlisted topic in a draft poll.

    :raises TransitionRefused: the poll is published.
    :raises InvalidPoll: the topic is not shortlisted, or already offered.
    """
    poll = _lock_poll(poll)
    _require_draft(poll)
    if topic.status is not TopicStatus.SHORTLISTED:
        raise InvalidPoll(_("Only shortlisted topics can be put to a vote."))
    if any(option.topic_id == topic.id for option in poll.options):
        raise InvalidPoll(_("This topic is already in the poll."))
    position = max((option.position for option in poll.options), default=-1) + 1
    option = PollOption(topic=topic, position=position)
    poll.options.append(option)
    db.session.flush()
    audit.record("poll.option_added", actor, poll, topic_id=topic.id, title=topic.title)
    return option


def remove_option(poll: Poll, option_id: int, actor: Actor) -> None:
    """Take a topic out of a draft poll.

    :raises TransitionRefused: the poll is published.
    :raises InvalidPoll: no such option in this poll.
    """
    poll = _lock_poll(poll)
    _require_draft(poll)
    option = next((o for o in poll.options if o.id == option_id), None)
    if option is None:
        raise InvalidPoll(_("That topic is not in this poll."))
    poll.options.remove(option)
    db.session.flush()
    audit.record("poll.option_removed", actor, poll, topic_id=option.topic_id)


def publishing_problems(poll: Poll, at: dt.datetime) -> list[str]:
    """What stops a draft from being published (empty when it can be)."""
    problems = []
    if len(poll.options) < 2:
        problems.append(_("Offer at least two topics."))
    if poll.closes_at is None:
        problems.append(_("Set when the poll closes."))
    elif poll.closes_at <= max(at, poll.opens_at or at):
        problems.append(_("The closing time must be in the future and after the opening time."))
    if poll.max_choices > max(len(poll.options), 1):
        problems.append(_("Patrons cannot choose more topics than the poll offers."))
    if poll.is_restricted_to_tiers and not allowed_tier_ids(poll):
        problems.append(_("The poll is restricted to tiers, but no tier may vote."))
    return problems


def publish_poll(poll: Poll, actor: Actor) -> PollState:
    """Publish a draft: patrons see it, and it opens at its opening time (now if none is set).

    :raises TransitionRefused: already published.
    :raises InvalidPoll: with every problem that stops it, one sentence each.
    """
    poll = _lock_poll(poll)
    _require_draft(poll)
    at = clock.now()
    problems = publishing_problems(poll, at)
    if problems:
        raise InvalidPoll(" ".join(problems))
    if poll.opens_at is None:
        poll.opens_at = at
    poll.state = PollState.SCHEDULED if at < poll.opens_at else PollState.OPEN
    db.session.flush()
    audit.record("poll.published", actor, poll, state=poll.state.value)
    return poll.state


def close_poll(poll: Poll, actor: Actor) -> bool:
    """Close a published poll now, before its closing time; False when it was already closed.

    :raises TransitionRefused: the poll is a draft.
    """
    poll = _lock_poll(poll)
    at = clock.now()
    if poll.state is PollState.DRAFT:
        raise TransitionRefused(_("A draft cannot be closed: it was never open."))
    if clock.observed_state(poll, at) is PollState.CLOSED:
        return False
    poll.state = PollState.CLOSED
    poll.closed_at = at
    poll.eligible_count = results.count_eligible(poll, at)
    db.session.flush()
    audit.record("poll.closed", actor, poll, by="staff", closed_at=at.isoformat())
    return True


def decline_winner(poll: Poll, topic: Topic, reason: str, actor: Actor) -> None:
    """Decline to cover a closed poll's winning topic, with a reason published on the poll.

    :raises TransitionRefused: the poll is not closed, or the topic did not win it.
    """
    at = clock.now()
    state = clock.observed_state(poll, at)
    if state is not PollState.CLOSED:
        raise TransitionRefused(_("Only the winner of a closed poll can be declined."))
    outcome = results.compute_results(poll, state, at, with_turnout=False)
    if topic.id not in {result.option.topic_id for result in outcome.winners}:
        raise TransitionRefused(_("That topic did not win this poll."))
    topics.decline_topic(topic, reason, actor)


def record_export(poll: Poll, actor: Actor, ballots: int) -> None:
    """Log that staff downloaded who voted for what (personal data left the app)."""
    audit.record("poll.votes_exported", actor, poll, ballots=ballots)
