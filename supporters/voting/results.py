"""Read-side figures of a poll: results by SQL aggregates, turnout, and who voted for what.

Results never loop over ballots in Python. One query groups the poll's ballots by weight (a
handful of rows: one per tier, or per distinct amount), which gives the ballot count, the total
weight and the cap (see :mod:`supporters.voting.weights`); a second sums each option's ballots
in SQL, split at the cap's limit: ``SUM(weight)`` of the ballots under it plus ``COUNT(*)`` of
those over it times the limit. Both are exact: integers from the database, fractions in Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import sqlalchemy as sa

from supporters import numbers
from supporters.billing.grant_models import Grant
from supporters.billing.grants import entitling
from supporters.billing.membership import LIVE_STATUSES, status_at
from supporters.billing.models import Subscription, SubscriptionStatus
from supporters.extensions import db
from supporters.members.models import Member
from supporters.voting.models import (
    WEIGHT_SCALE,
    Poll,
    PollOption,
    PollState,
    PollTierRule,
    ResultsVisibility,
    Topic,
    TopicStatus,
    Vote,
    VoteChoice,
)
from supporters.voting.weights import cap_limit, capped_weight

# Live statuses of a subscription whose current renewal went unpaid.
UNPAID_RENEWAL_STATUSES = (
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.PAUSED,
)


@dataclass(frozen=True)
class OptionResult:
    """One option's standing: ballots that chose it, their weight and its share of all weight."""

    option: PollOption
    ballots: int
    weight: Fraction  # millionths of a vote, after the cap
    share: Fraction  # of the poll's total weight: 0..1 (options of a multi-choice poll add to more)
    is_winner: bool = False

    @property
    def topic(self) -> Topic:
        return self.option.topic


@dataclass(frozen=True)
class PollResults:
    """A poll's figures at one moment; ``is_final`` once it is closed."""

    ballots: int
    total_weight: Fraction
    eligible: int | None  # None when not asked for (see compute_results)
    options: list[OptionResult]
    is_final: bool
    limit: Fraction | None = None  # the cap's limit, when it cut at least one ballot
    capped_ballots: int = 0
    by_option: dict[int, OptionResult] = field(default_factory=dict)

    @property
    def winners(self) -> list[OptionResult]:
        return [result for result in self.options if result.is_winner]

    @property
    def is_tie(self) -> bool:
        return len(self.winners) > 1

    @property
    def turnout(self) -> Fraction | None:
        """Ballots among patrons who could vote (None when nobody could, or not counted)."""
        return Fraction(self.ballots, self.eligible) if self.eligible else None


def count_eligible(poll: Poll, at: dt.datetime) -> int:
    """Patrons who could vote in this poll at ``at``: now, or when a closed poll closed.

    Counted from the subscriptions' history as ``billing.membership.status_at`` reads it, so a
    closed poll's figure does not move as memberships change afterwards. Each member's
    subscription at ``at`` is picked in SQL as billing picks the current one (the live one,
    else the newest), among those started by then, "live" meaning not ended by then; those that
    surely entitled their member then are counted there (active or trialing, or since cancelled
    at the end of a paid period). The few whose renewal went unpaid are judged by ``status_at``
    itself, so the grace-period rule lives in one place.
    """
    sub = Subscription
    live_then = sa.or_(
        sub.ended_at > at, sa.and_(sub.ended_at.is_(None), sub.status.in_(LIVE_STATUSES))
    )
    ranked = (
        sa.select(
            sub.id,
            sub.status,
            sub.tier_id,
            sub.ended_at,
            sub.current_period_end,
            sa.func.row_number()
            .over(
                partition_by=sub.member_id,
                order_by=(sa.case((live_then, 0), else_=1), sub.created_at.desc(), sub.id.desc()),
            )
            .label("rank"),
        )
        .where(sa.func.coalesce(sub.started_at, sub.created_at) <= at)
        .subquery()
    )
    then = [
        ranked.c.rank == 1,
        sa.or_(
            ranked.c.ended_at > at,
            sa.and_(ranked.c.ended_at.is_(None), ranked.c.status.in_(LIVE_STATUSES)),
        ),
    ]
    if poll.is_restricted_to_tiers:
        allowed = sa.select(PollTierRule.tier_id).where(
            PollTierRule.poll_id == poll.id, PollTierRule.may_vote.is_(True)
        )
        then.append(ranked.c.tier_id.in_(allowed))
    cancelled = ranked.c.status == SubscriptionStatus.CANCELED
    paid_to_its_end = sa.or_(
        ranked.c.current_period_end.is_(None), ranked.c.ended_at >= ranked.c.current_period_end
    )
    entitled = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(ranked)
        .where(
            *then,
            sa.or_(
                ranked.c.status.in_((SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)),
                sa.and_(cancelled, paid_to_its_end),
            ),
        )
    )
    unpaid = db.session.scalars(
        sa.select(Subscription).where(
            Subscription.id.in_(
                sa.select(ranked.c.id).where(
                    *then,
                    sa.or_(
                        ranked.c.status.in_(UNPAID_RENEWAL_STATUSES),
                        sa.and_(cancelled, sa.not_(paid_to_its_end)),
                    ),
                )
            )
        )
    )
    in_grace = sum(1 for subscription in unpaid if status_at(subscription, at).is_entitled)
    return int(entitled or 0) + in_grace + _count_granted(poll, at, live_then)


def _count_granted(poll: Poll, at: dt.datetime, live_then: sa.ColumnElement[bool]) -> int:
    """Members entitled at ``at`` by a grant (of an allowed tier) and by no live subscription.

    A member with a live subscription then is counted (or not) by it above, as
    ``membership.with_grant`` lets a subscription come first.
    """
    live = sa.select(Subscription.id).where(
        Subscription.member_id == Grant.member_id,
        sa.func.coalesce(Subscription.started_at, Subscription.created_at) <= at,
        live_then,
    )
    query = sa.select(sa.func.count(sa.distinct(Grant.member_id))).where(
        entitling(at), ~live.exists()
    )
    if poll.is_restricted_to_tiers:
        allowed = sa.select(PollTierRule.tier_id).where(
            PollTierRule.poll_id == poll.id, PollTierRule.may_vote.is_(True)
        )
        query = query.where(Grant.tier_id.in_(allowed))
    return int(db.session.scalar(query) or 0)


def eligible_at_closing(poll: Poll, now: dt.datetime) -> int:
    """Patrons who could vote in a closed poll: kept when staff closed it, else counted then."""
    if poll.eligible_count is not None:
        return poll.eligible_count
    return count_eligible(poll, min(poll.ends_at or now, now))


def weight_groups(poll_id: int) -> list[tuple[int, int]]:
    """The poll's ballots grouped by weight: [(weight, ballots)], heaviest first."""
    rows = db.session.execute(
        sa.select(Vote.weight, sa.func.count())
        .where(Vote.poll_id == poll_id)
        .group_by(Vote.weight)
        .order_by(Vote.weight.desc())
    ).all()
    return [(int(weight), int(count)) for weight, count in rows]


def compute_results(
    poll: Poll, state: PollState, now: dt.datetime, *, with_turnout: bool = True
) -> PollResults:
    """Counts, weights, shares and (once closed) winners of a poll, from SQL aggregates.

    The turnout's denominator is the patrons who may vote now, or could when a closed poll
    closed (kept by staff's early closing, else counted from the history). Callers that show
    no turnout pass ``with_turnout=False`` and skip that count.
    """
    groups = weight_groups(poll.id)
    ballots = sum(count for _, count in groups)
    limit = cap_limit(groups, poll.weight_cap_percent) if poll.weight_cap_percent else None
    if limit is not None and not any(w > limit for w, _ in groups):
        limit = None  # the cap holds without cutting anyone
    total = sum((capped_weight(w, limit) * c for w, c in groups), Fraction(0))
    capped_ballots = sum(c for w, c in groups if limit is not None and w > limit)

    if limit is None:
        kept: sa.ColumnElement[int] = sa.func.sum(Vote.weight)
        cut: sa.ColumnElement[int] = sa.literal(0)
    else:
        # For an integer weight, weight > M exactly when weight > floor(M).
        over = Vote.weight > limit.numerator // limit.denominator
        kept = sa.func.sum(sa.case((over, 0), else_=Vote.weight))
        cut = sa.func.count(sa.case((over, 1)))
    per_option = db.session.execute(
        sa.select(VoteChoice.option_id, sa.func.count(), sa.func.coalesce(kept, 0), cut)
        .join(Vote, Vote.id == VoteChoice.vote_id)
        .where(VoteChoice.poll_id == poll.id)
        .group_by(VoteChoice.option_id)
    ).all()
    sums = {
        option_id: (int(count), Fraction(int(kept)) + (limit or 0) * int(cut))
        for option_id, count, kept, cut in per_option
    }

    is_final = state is PollState.CLOSED
    best = max((weight for _, weight in sums.values()), default=Fraction(0))
    results = []
    for option in poll.options:
        count, weight = sums.get(option.id, (0, Fraction(0)))
        results.append(
            OptionResult(
                option=option,
                ballots=count,
                weight=weight,
                share=weight / total if total else Fraction(0),
                is_winner=is_final and best > 0 and weight == best,
            )
        )
    results.sort(key=lambda result: (-result.weight, -result.ballots, result.option.position))
    eligible = None
    if with_turnout:
        eligible = eligible_at_closing(poll, now) if is_final else count_eligible(poll, now)
    return PollResults(
        ballots=ballots,
        total_weight=total,
        eligible=eligible,
        options=results,
        is_final=is_final,
        limit=limit,
        capped_ballots=capped_ballots,
        by_option={result.option.id: result for result in results},
    )


# -- who may see them -----------------------------------------------------------------------------


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


# -- numbers for people ---------------------------------------------------------------------------


def votes(weight: Fraction | int, places: int = 2) -> Decimal:
    """A weight in millionths as a number of votes."""
    return numbers.decimal(Fraction(weight) / WEIGHT_SCALE, places)


def percent(share: Fraction | None, places: int = 1) -> Decimal:
    """A share (0..1) as a percentage."""
    return numbers.decimal((share or Fraction(0)) * 100, places)


# -- staff: who voted for what --------------------------------------------------------------------


@dataclass(frozen=True)
class BallotRow:
    """One ballot as staff see it."""

    vote_id: int
    member_id: int
    name: str
    email: str
    choices: list[str]
    weight: int
    counted: Fraction
    created_at: dt.datetime
    updated_at: dt.datetime


def ballot_rows(
    poll: Poll, *, after_id: int = 0, limit: int = 500, cap: Fraction | None = None
) -> list[BallotRow]:
    """A page of the poll's ballots in the order they were first cast (keyset by vote id)."""
    rows = db.session.execute(
        sa.select(Vote, Member)
        .join(Member, Member.id == Vote.member_id)
        .where(Vote.poll_id == poll.id, Vote.id > after_id)
        .order_by(Vote.id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    titles = {option.id: option.topic.title for option in poll.options}
    chosen: dict[int, list[str]] = {}
    for vote_id, option_id in db.session.execute(
        sa.select(VoteChoice.vote_id, VoteChoice.option_id)
        .join(PollOption, PollOption.id == VoteChoice.option_id)
        .where(VoteChoice.vote_id.in_([vote.id for vote, _ in rows]))
        .order_by(VoteChoice.vote_id, PollOption.position)
    ):
        chosen.setdefault(vote_id, []).append(titles.get(option_id, str(option_id)))
    return [
        BallotRow(
            vote_id=vote.id,
            member_id=member.id,
            name=member.name,
            email=member.email,
            choices=chosen.get(vote.id, []),
            weight=vote.weight,
            counted=capped_weight(vote.weight, cap),
            created_at=vote.created_at,
            updated_at=vote.updated_at,
        )
        for vote, member in rows
    ]


def iter_ballots(poll: Poll, cap: Fraction | None, chunk: int = 1000) -> Iterator[BallotRow]:
    """Every ballot of the poll, a chunk at a time, so an export holds little in memory."""
    after = 0
    while True:
        rows = ballot_rows(poll, after_id=after, limit=chunk, cap=cap)
        if not rows:
            return
        yield from rows
        after = rows[-1].vote_id


def ballot_count(poll_id: int) -> int:
    return int(
        db.session.scalar(
            sa.select(sa.func.count()).select_from(Vote).where(Vote.poll_id == poll_id)
        )
        or 0
    )


# -- "You asked, we reported" ---------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """A published topic and how it fared in the closed polls that offered it."""

    topic: Topic
    standings: list[tuple[Poll, OptionResult, PollResults]]


def covered_topics(now: dt.datetime) -> list[Coverage]:
    """Published topics, newest article first, each with its results in closed polls."""
    topics = db.session.scalars(
        sa.select(Topic)
        .where(Topic.status == TopicStatus.PUBLISHED)
        .order_by(Topic.published_on.desc(), Topic.id.desc())
    ).all()
    if not topics:
        return []
    option_rows = db.session.execute(
        sa.select(PollOption.topic_id, Poll)
        .join(Poll, Poll.id == PollOption.poll_id)
        .where(
            PollOption.topic_id.in_([topic.id for topic in topics]),
            Poll.closed_by(now),
        )
        .order_by(sa.func.coalesce(Poll.closed_at, Poll.closes_at).desc(), Poll.id.desc())
    ).all()
    cache: dict[int, PollResults] = {}
    standings: dict[int, list[tuple[Poll, OptionResult, PollResults]]] = {}
    for topic_id, poll in option_rows:
        if poll.id not in cache:
            cache[poll.id] = compute_results(poll, PollState.CLOSED, now, with_turnout=False)
        results = cache[poll.id]
        for result in results.options:
            if result.option.topic_id == topic_id:
                standings.setdefault(topic_id, []).append((poll, result, results))
    return [Coverage(topic, standings.get(topic.id, [])) for topic in topics]
