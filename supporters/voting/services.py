"""Voting operations: the poll clock, who may vote, casting a ballot, running polls, topics.

Services flush and never commit; the view or command that calls them commits once. They take
the time from :func:`now` (tests freeze it) and report refusals as :class:`VotingError`s whose
message is fit to show to the person.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.util import identity_key

from supporters import audit
from supporters.audit import Actor
from supporters.billing.membership import MembershipStatus, current_subscription, status_of
from supporters.billing.models import Subscription
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member
from supporters.voting import results as results_module
from supporters.voting.models import (
    Poll,
    PollOption,
    PollState,
    PollTierRule,
    ResultsVisibility,
    Topic,
    TopicStatus,
    Vote,
    VoteChoice,
    Weighting,
)
from supporters.voting.weights import ballot_weight

# A patron may have this many proposals waiting for review at once.
MAX_PENDING_PROPOSALS = 5


def now() -> dt.datetime:
    """The voting clock. Every decision about poll state reads it; tests replace it."""
    return utcnow()


# -- errors -------------------------------------------------------------------------------------


class VotingError(Exception):
    """A refused operation; ``message`` is fit to show to the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PollNotFound(VotingError):
    """No such poll, or a draft that only staff may see."""


class PollNotOpen(VotingError):
    """The poll is not taking ballots (not open yet, or closed)."""


class NotEligible(VotingError):
    """This member may not vote (or propose) now."""


class InvalidBallot(VotingError):
    """The ballot names no option, too many, or options of another poll."""


class InvalidPoll(VotingError):
    """The poll cannot be published or changed as asked."""


class TransitionRefused(VotingError):
    """The poll or topic is not in a state that allows this (edited by someone else?)."""


# -- the poll clock -----------------------------------------------------------------------------


def observed_state(poll: Poll, at: dt.datetime) -> PollState:
    """The state the clock gives a published poll; drafts and closed polls keep theirs.

    Worked out on every read and never stored: no background job opens or closes polls, and a
    reader's request writes nothing (``Poll.closed_by`` is the same rule in SQL).
    """
    if poll.state in (PollState.DRAFT, PollState.CLOSED):
        return poll.state
    if poll.closes_at is not None and at >= poll.closes_at:
        return PollState.CLOSED
    if poll.opens_at is not None and at < poll.opens_at:
        return PollState.SCHEDULED
    return PollState.OPEN


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
    return poll, observed_state(poll, now())


def visible_polls() -> list[tuple[Poll, PollState]]:
    """Published polls, open ones first, each with its state (observed now)."""
    polls = db.session.scalars(
        sa.select(Poll)
        .where(Poll.state != PollState.DRAFT)
        .order_by(Poll.closes_at.desc().nulls_last(), Poll.id.desc())
    ).all()
    at = now()
    return [(poll, observed_state(poll, at)) for poll in polls]


# -- who may vote -------------------------------------------------------------------------------


class Refusal(enum.StrEnum):
    """Why someone may not vote in a poll."""

    SIGNED_OUT = "signed_out"
    NOT_PATRON = "not_patron"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    LAPSED = "lapsed"
    TIER = "tier"


@dataclass(frozen=True)
class Eligibility:
    """Whether a person may vote in a poll now, why not, and what their ballot would weigh."""

    refusal: Refusal | None
    membership: MembershipStatus
    weight: int = 0

    @property
    def may_vote(self) -> bool:
        return self.refusal is None

    @property
    def message(self) -> str:
        messages = {
            Refusal.SIGNED_OUT: _("Sign in as a patron to vote."),
            Refusal.NOT_PATRON: _("Only patrons can vote. Become a patron to have your say."),
            Refusal.PENDING: _(
                "Your first payment is still being processed. You can vote once it is through."
            ),
            Refusal.ON_HOLD: _(
                "Your last payment did not go through, so your benefits are paused. Update your "
                "card to vote again."
            ),
            Refusal.LAPSED: _(
                "Your support has lapsed, so you cannot vote. Renew your support to vote again."
            ),
            Refusal.TIER: _("This poll is for patrons of some tiers only, and yours is not one."),
        }
        return messages[self.refusal] if self.refusal else ""


_MEMBERSHIP_REFUSALS = {
    MembershipStatus.NONE: Refusal.NOT_PATRON,
    MembershipStatus.PENDING: Refusal.PENDING,
    MembershipStatus.ON_HOLD: Refusal.ON_HOLD,
    MembershipStatus.LAPSED: Refusal.LAPSED,
}


def tier_rules(poll: Poll) -> dict[int, PollTierRule]:
    return {rule.tier_id: rule for rule in poll.tier_rules}


def check_eligibility(
    poll: Poll, member: Member | None, at: dt.datetime, subscription: Subscription | None = None
) -> Eligibility:
    """May this person vote in this poll at ``at``, and with what weight?

    Patrons whose membership entitles them (active, or past_due within the grace period) may
    vote; a poll restricted to tiers also wants their tier to be allowed. The weight follows
    the poll's rule (see :mod:`supporters.voting.weights`). ``subscription`` is the member's
    current one when the caller has it (loaded with the session); without it, it is looked up.
    """
    if member is None:
        return Eligibility(Refusal.SIGNED_OUT, MembershipStatus.NONE)
    if subscription is None:
        subscription = current_subscription(member.id)
    membership = status_of(subscription, at)
    if not membership.is_entitled:
        return Eligibility(_MEMBERSHIP_REFUSALS[membership], membership)
    assert subscription is not None  # entitled means there is one
    needs_rules = poll.is_restricted_to_tiers or poll.weighting is Weighting.TIER
    rules = tier_rules(poll) if needs_rules else {}
    if poll.is_restricted_to_tiers:
        rule = rules.get(subscription.tier_id) if subscription.tier_id is not None else None
        if rule is None or not rule.may_vote:
            return Eligibility(Refusal.TIER, membership)
    return Eligibility(None, membership, ballot_weight(poll, subscription, rules))


def allowed_tier_ids(poll: Poll) -> list[int]:
    """Tiers whose patrons may vote in a poll restricted to tiers."""
    return [rule.tier_id for rule in poll.tier_rules if rule.may_vote]


# -- casting a ballot ---------------------------------------------------------------------------


def get_ballot(poll_id: int, member_id: int) -> Vote | None:
    return db.session.scalar(
        sa.select(Vote).where(Vote.poll_id == poll_id, Vote.member_id == member_id)
    )


def chosen_option_ids(vote: Vote | None) -> set[int]:
    return {choice.option_id for choice in vote.choices} if vote else set()


@dataclass(frozen=True)
class CastBallot:
    """What :func:`cast_vote` stored."""

    vote_id: int
    option_ids: tuple[int, ...]
    weight: int
    is_new: bool  # False when it replaced an earlier ballot


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (poll_id, member_id) DO UPDATE ... RETURNING``, built once."""
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    votes = cast(sa.Table, Vote.__table__)
    at = sa.bindparam("at", type_=votes.c.created_at.type)
    statement = insert(votes).values(
        poll_id=sa.bindparam("poll_id"),
        member_id=sa.bindparam("member_id"),
        weight=sa.bindparam("weight"),
        created_at=at,
        updated_at=at,
    )
    return statement.on_conflict_do_update(
        index_elements=[votes.c.poll_id, votes.c.member_id],
        set_={
            "weight": statement.excluded.weight,
            "updated_at": statement.excluded.updated_at,
            "changes": votes.c.changes + 1,
        },
    ).returning(votes.c.id, votes.c.changes)


def _upsert_ballot(poll_id: int, member_id: int, weight: int, at: dt.datetime) -> tuple[int, bool]:
    """Insert the member's ballot row, or take the one already there; returns (id, is new).

    One statement, one round trip: the unique constraint decides between concurrent
    submissions (two tabs, a double click), and on PostgreSQL ``ON CONFLICT DO UPDATE`` leaves
    the row locked until commit, as ``SELECT ... FOR UPDATE`` would, so replacing the choices
    after it is serialised per ballot; each waiting submission then reads the choices the one
    before it committed. (SQLite has a single writer: the transaction already excludes others.)
    """
    statement = _upsert_statement(db.session.get_bind().dialect.name)
    vote_id, changes = db.session.execute(
        statement, {"poll_id": poll_id, "member_id": member_id, "weight": weight, "at": at}
    ).one()
    return int(vote_id), changes == 0


_CHOICES = cast(sa.Table, VoteChoice.__table__)

# PostgreSQL: one statement. It runs after the upsert has locked the ballot, so its snapshot
# holds every choice committed before; unchosen ones go, chosen ones already there stay.
_REPLACE_CHOICES_POSTGRESQL = sa.text(
    """
    WITH dropped AS (
        DELETE FROM vote_choices
        WHERE vote_id = :vote_id AND NOT (option_id = ANY(:option_ids))
    )
    INSERT INTO vote_choices (vote_id, poll_id, option_id)
    SELECT :vote_id, :poll_id, chosen FROM unnest(:option_ids) AS chosen
    ON CONFLICT (vote_id, option_id) DO NOTHING
    """
).bindparams(sa.bindparam("option_ids", type_=postgresql.ARRAY(sa.Integer)))
_DROP_UNCHOSEN = sa.delete(_CHOICES).where(
    _CHOICES.c.vote_id == sa.bindparam("vote_id"),
    _CHOICES.c.option_id.not_in(sa.bindparam("option_ids", expanding=True)),
)
_ADD_CHOSEN = (
    sqlite.insert(_CHOICES)
    .values(
        vote_id=sa.bindparam("vote_id"),
        poll_id=sa.bindparam("poll_id"),
        option_id=sa.bindparam("option_id"),
    )
    .on_conflict_do_nothing(index_elements=[_CHOICES.c.vote_id, _CHOICES.c.option_id])
)


def _replace_choices(vote_id: int, poll_id: int, option_ids: list[int]) -> None:
    """Make the ballot's choices exactly ``option_ids``, leaving those that stay untouched."""
    params = {"vote_id": vote_id, "poll_id": poll_id, "option_ids": option_ids}
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_REPLACE_CHOICES_POSTGRESQL, params)
        return
    db.session.execute(_DROP_UNCHOSEN, params)
    db.session.execute(
        _ADD_CHOSEN,
        [{"vote_id": vote_id, "poll_id": poll_id, "option_id": option} for option in option_ids],
    )


def validate_choices(poll: Poll, option_ids: Iterable[int]) -> list[int]:
    """The distinct options chosen, checked against the poll.

    :raises InvalidBallot: none chosen, more than allowed, or an option of another poll.
    """
    chosen = list(dict.fromkeys(option_ids))
    if not chosen:
        raise InvalidBallot(_("Choose at least one topic."))
    if len(chosen) > poll.max_choices:
        raise InvalidBallot(
            ngettext(
                "You can choose only %(num)d topic in this poll.",
                "You can choose up to %(num)d topics in this poll.",
                poll.max_choices,
            )
        )
    known = {option.id for option in poll.options}
    if not set(chosen) <= known:
        raise InvalidBallot(_("That choice is not one of this poll's topics."))
    return chosen


def cast_vote(
    poll: Poll,
    member: Member,
    option_ids: Sequence[int],
    subscription: Subscription | None = None,
) -> CastBallot:
    """Record (or replace) the member's ballot in an open poll, with its weight as of now.

    ``subscription``: the member's current one, if the caller has it (see
    :func:`check_eligibility`).

    :raises PollNotFound: a draft.
    :raises PollNotOpen: not open yet, or closed.
    :raises NotEligible: not an entitled patron, or not of an allowed tier.
    :raises InvalidBallot: no choice, too many, or an option of another poll.
    """
    at = now()
    state = observed_state(poll, at)
    if state is PollState.DRAFT:
        raise PollNotFound(_("There is no such poll."))
    if state is PollState.SCHEDULED:
        raise PollNotOpen(_("This poll has not opened yet."))
    if state is PollState.CLOSED:
        raise PollNotOpen(_("This poll has closed: ballots can no longer be cast or changed."))
    eligibility = check_eligibility(poll, member, at, subscription)
    if not eligibility.may_vote:
        raise NotEligible(eligibility.message)
    chosen = validate_choices(poll, option_ids)

    vote_id, is_new = _upsert_ballot(poll.id, member.id, eligibility.weight, at)
    if is_new:
        # The poll's row stays locked until commit: new ballots in one poll count one at a time.
        db.session.execute(_COUNT_BALLOT, {"poll_id": poll.id})
        db.session.expire(poll, ["ballot_count"])
    _replace_choices(vote_id, poll.id, chosen)
    # Core statements changed rows the session may hold: let it read them afresh.
    stale = db.session.identity_map.get(identity_key(Vote, vote_id))
    if stale is not None:
        db.session.expire(stale)
    return CastBallot(vote_id, tuple(chosen), eligibility.weight, is_new=is_new)


_COUNT_BALLOT = (
    sa.update(Poll)
    .where(Poll.id == sa.bindparam("poll_id"))
    .values(ballot_count=Poll.ballot_count + 1)
    .execution_options(synchronize_session=False)
)


def recount_ballots() -> None:
    """Set every poll's ballot count from its ballots (after ballots written in bulk)."""
    counted = (
        sa.select(sa.func.count())
        .select_from(Vote)
        .where(Vote.poll_id == Poll.id)
        .scalar_subquery()
    )
    db.session.execute(
        sa.update(Poll).values(ballot_count=counted).execution_options(synchronize_session=False)
    )


# -- results: who may see them ------------------------------------------------------------------


def may_see_results(poll: Poll, state: PollState, viewer: Member | None, has_voted: bool) -> bool:
    """Members see a poll's aggregates per its setting; staff always; everyone once closed."""
    if viewer is not None and viewer.is_staff:
        return True
    if state is PollState.CLOSED:
        return True
    if state is not PollState.OPEN:
        return False
    if poll.results_visibility is ResultsVisibility.ALWAYS:
        return True
    if poll.results_visibility is ResultsVisibility.AFTER_VOTING:
        return has_voted
    return False


# -- running polls (staff) ----------------------------------------------------------------------


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
    poll = Poll(state=PollState.DRAFT, created_by_id=actor.member_id, created_at=now())
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
    at = now()
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
    at = now()
    if poll.state is PollState.DRAFT:
        raise TransitionRefused(_("A draft cannot be closed: it was never open."))
    if observed_state(poll, at) is PollState.CLOSED:
        return False
    poll.state = PollState.CLOSED
    poll.closed_at = at
    poll.eligible_count = results_module.count_eligible(poll, at)
    db.session.flush()
    audit.record("poll.closed", actor, poll, by="staff", closed_at=at.isoformat())
    return True


def decline_winner(poll: Poll, topic: Topic, reason: str, actor: Actor) -> None:
    """Decline to cover a closed poll's winning topic, with a reason published on the poll.

    :raises TransitionRefused: the poll is not closed, or the topic did not win it.
    """
    at = now()
    state = observed_state(poll, at)
    if state is not PollState.CLOSED:
        raise TransitionRefused(_("Only the winner of a closed poll can be declined."))
    outcome = results_module.compute_results(poll, state, at, with_turnout=False)
    if topic.id not in {result.option.topic_id for result in outcome.winners}:
        raise TransitionRefused(_("That topic did not win this poll."))
    decline_topic(topic, reason, actor)


# -- topics: proposals, review and the way to publication --------------------------------------


def may_propose(member: Member | None) -> bool:
    """Patrons (the same ones who may vote) may propose topics."""
    return member is not None and status_of(current_subscription(member.id), now()).is_entitled


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
        created_at=now(),
    )
    db.session.add(topic)
    db.session.flush()
    return topic


def create_topic(title: str, pitch: str, actor: Actor) -> Topic:
    """A topic written by staff: shortlisted at once, ready to be put to a vote."""
    at = now()
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
    return [name for name, (sources, _) in TOPIC_TRANSITIONS.items() if topic.status in sources]


def _lock_topic(topic: Topic) -> Topic:
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
    topic.reviewed_at = now()
    for key, value in changes.items():
        setattr(topic, key, value)
    db.session.flush()
    details = {
        key: (value.isoformat() if isinstance(value, dt.date) else value)
        for key, value in changes.items()
    }
    audit.record(f"topic.{action}", actor, topic, **{"from": previous.value}, **details)
    return topic, True


def approve_topic(topic: Topic, actor: Actor) -> bool:
    """Shortlist a proposal: it may now be put to a vote."""
    return _transition(topic, "approve", actor)[1]


def reject_topic(topic: Topic, reason: str, actor: Actor) -> bool:
    """Turn a proposal down; the reason is shown to the patron who proposed it."""
    return _transition(topic, "reject", actor, status_reason=reason.strip())[1]


def merge_topic(topic: Topic, into: Topic, actor: Actor) -> bool:
    """Fold a proposal into an existing topic (the proposer is told which).

    :raises InvalidPoll: merging into itself, or into a topic that is merged or rejected.
    """
    if into.id == topic.id:
        raise InvalidPoll(_("A topic cannot be merged into itself."))
    if into.status in (TopicStatus.MERGED, TopicStatus.REJECTED):
        raise InvalidPoll(_("Merge into a topic that is still open, not a rejected or merged one."))
    return _transition(topic, "merge", actor, merged_into_id=into.id)[1]


def commission_topic(topic: Topic, actor: Actor) -> bool:
    """A reporter is on it."""
    return _transition(topic, "commission", actor)[1]


def publish_topic(topic: Topic, article_url: str, published_on: dt.date, actor: Actor) -> bool:
    """The story is out: record where and when (again, to correct either)."""
    return _transition(
        topic,
        "publish",
        actor,
        article_url=article_url.strip(),
        published_on=published_on,
        status_reason="",
    )[1]


def decline_topic(topic: Topic, reason: str, actor: Actor) -> bool:
    """Decide not to cover a topic, with a public reason.

    The reason is also published on every closed poll the topic won: an editor may overrule
    the patrons' choice, but only in the open.
    """
    topic, changed = _transition(topic, "decline", actor, status_reason=reason.strip())
    if not changed:
        return False
    at = now()
    won = db.session.scalars(
        sa.select(Poll)
        .join(PollOption, PollOption.poll_id == Poll.id)
        .where(PollOption.topic_id == topic.id, Poll.closed_by(at))
    ).all()
    for poll in won:
        outcome = results_module.compute_results(poll, PollState.CLOSED, at, with_turnout=False)
        if any(result.option.topic_id == topic.id for result in outcome.winners):
            poll.decline_reason = reason.strip()
            audit.record(
                "poll.winner_declined", actor, poll, topic_id=topic.id, reason=reason.strip()
            )
    db.session.flush()
    return True


def topic_status_label(status: TopicStatus) -> str:
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


def record_export(poll: Poll, actor: Actor, ballots: int) -> None:
    """Log that staff downloaded who voted for what (personal data left the app)."""
    audit.record("poll.votes_exported", actor, poll, ballots=ballots)
