"""Where things stand: patrons and MRR now and 30 days ago, funding goals, the poll's turnout."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from supporters.billing.figures import Totals
from supporters.billing.grant_models import GrantSource
from supporters.billing.grants import granted_patrons
from supporters.billing.models import FundingGoal, GoalMeasure, Tier
from supporters.db import utcnow
from supporters.extensions import db
from supporters.staff.models import CUSTOM_TIER, DayTotal, SubscriptionMonth
from supporters.voting import results
from supporters.voting.models import Poll, PollState, PollTierRule


@dataclasses.dataclass(frozen=True)
class TierCount:
    tier_id: int | None
    name: str
    currency: str
    subscriptions: int
    mrr: int


@dataclasses.dataclass(frozen=True)
class Now:
    """Head counts and recurring revenue now and 30 days ago."""

    patrons: int
    patrons_30_days_ago: int
    mrr: dict[str, int]
    mrr_30_days_ago: dict[str, int]
    subscriptions: dict[str, int]  # counted subscriptions per currency
    by_tier: list[TierCount]
    # Patrons by a grant and no subscription (in ``patrons``, never in MRR), by source.
    granted: dict[GrantSource, int] = dataclasses.field(default_factory=dict)

    def average_revenue(self, currency: str) -> Fraction | None:
        """MRR ÷ paying subscriptions in the currency (a member has at most one live one)."""
        count = self.subscriptions.get(currency, 0)
        return Fraction(self.mrr.get(currency, 0), count) if count else None


@functools.cache
def _totals_query() -> sa.Select[Any]:
    t = SubscriptionMonth.__table__.c
    return sa.select(t.currency, sa.func.sum(t.mrr), sa.func.sum(t.patrons)).group_by(t.currency)


def totals() -> Totals:
    """Patrons and MRR per currency now, as the overview shows them: one read of the rollups.

    What the support page's funding goals and the public embeds show (registered with billing
    from ``create_app``). The rollups' cost grows with months, currencies and tiers, never with
    members; the patrons entitled by a grant alone are added as the overview adds them, read
    from the grants (few, but for the weeks of a move from Patreon).
    """
    rows = db.session.execute(_totals_query()).all()
    return Totals(
        patrons=sum(int(patrons) for _, _, patrons in rows)
        + sum(granted_patrons(utcnow()).values()),
        mrr={currency: int(mrr) for currency, mrr, _ in rows if mrr},
    )


def now_figures(now: dt.datetime | None = None) -> Now:
    """Patrons and MRR now (sums of the whole ledger) and 30 days before.

    Patrons also count members entitled by a grant alone (complimentary, or via Patreon),
    read from the grants against the clock; grants add nothing to MRR.
    """
    now = now or utcnow()
    t = SubscriptionMonth.__table__.c
    d = DayTotal.__table__.c
    totals = db.session.execute(
        sa.select(
            t.currency, sa.func.sum(t.mrr), sa.func.sum(t.subscriptions), sa.func.sum(t.patrons)
        ).group_by(t.currency)
    ).all()
    since = (now - dt.timedelta(days=30)).date()
    recent = {
        currency: (int(mrr), int(patrons))
        for currency, mrr, patrons in db.session.execute(
            sa.select(d.currency, sa.func.sum(d.mrr), sa.func.sum(d.patrons))
            .where(d.day > since)
            .group_by(d.currency)
        )
    }
    # Currencies with recurring revenue now, or with changes in the last 30 days.
    mrr = {c: int(m) for c, m, s, p in totals if m or s or c in recent}
    patrons = sum(int(p) for _, _, _, p in totals)
    tiers = dict(db.session.execute(sa.select(Tier.id, Tier.name)).all())
    by_tier = [
        TierCount(
            tier_id=None if key == CUSTOM_TIER else key,
            name=tiers.get(key, "") if key != CUSTOM_TIER else "",
            currency=currency,
            subscriptions=int(count),
            mrr=int(amount),
        )
        for key, currency, count, amount in db.session.execute(
            sa.select(t.tier_key, t.currency, sa.func.sum(t.subscriptions), sa.func.sum(t.mrr))
            .group_by(t.tier_key, t.currency)
            .having(sa.func.sum(t.subscriptions) != 0)
            .order_by(t.currency, sa.func.sum(t.subscriptions).desc(), t.tier_key)
        )
    ]
    granted = granted_patrons(now)
    granted_before = sum(granted_patrons(now - dt.timedelta(days=30)).values())
    return Now(
        patrons=patrons + sum(granted.values()),
        patrons_30_days_ago=patrons - sum(p for _, p in recent.values()) + granted_before,
        mrr=mrr,
        mrr_30_days_ago={c: m - recent.get(c, (0, 0))[0] for c, m in mrr.items()},
        subscriptions={c: int(s) for c, m, s, p in totals if c in mrr},
        by_tier=by_tier,
        granted=granted,
    )


# -- goals and polls ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GoalProgress:
    goal: FundingGoal
    value: int

    @property
    def share(self) -> Fraction:
        return Fraction(self.value, self.goal.target)


def goal_progress(now_figures: Now) -> list[GoalProgress]:
    """Active funding goals and how far each has come (from the rollups, not a table scan)."""
    goals = db.session.scalars(
        sa.select(FundingGoal).where(FundingGoal.is_active).order_by(FundingGoal.position)
    ).all()
    result = []
    for goal in goals:
        if goal.measure is GoalMeasure.PATRONS:
            value = now_figures.patrons
        else:
            value = now_figures.mrr.get(goal.currency or "", 0)
        result.append(GoalProgress(goal, value))
    return result


@dataclasses.dataclass(frozen=True)
class Turnout:
    poll: Poll
    is_open: bool
    ballots: int
    eligible: int | None

    @property
    def share(self) -> Fraction | None:
        return Fraction(self.ballots, self.eligible) if self.eligible else None


def current_poll_turnout(now_figures: Now, now: dt.datetime | None = None) -> Turnout | None:
    """The open poll (or else the last closed one): ballots ÷ patrons who could vote.

    For an open poll the denominator is today's patrons (of the allowed tiers, for a poll
    restricted to some tiers); for a closed poll, those who could vote when it closed.
    """
    now = now or utcnow()
    published = (Poll.state != PollState.DRAFT, Poll.opens_at.is_not(None), Poll.opens_at <= now)
    poll = db.session.scalars(
        sa.select(Poll)
        .where(*published, sa.or_(Poll.closes_at.is_(None), Poll.closes_at > now))
        .where(Poll.state != PollState.CLOSED)
        .order_by(Poll.opens_at.desc())
        .limit(1)
    ).first()
    is_open = poll is not None
    if poll is None:
        poll = db.session.scalars(
            sa.select(Poll)
            .where(*published)
            .order_by(sa.func.coalesce(Poll.closed_at, Poll.closes_at).desc())
            .limit(1)
        ).first()
    if poll is None:
        return None
    ballots = poll.ballot_count  # kept as ballots are cast: no count over the ballots
    eligible: int | None
    if not is_open:
        eligible = results.eligible_at_closing(poll, now)
    elif poll.is_restricted_to_tiers:
        allowed = set(
            db.session.scalars(
                sa.select(PollTierRule.tier_id).where(
                    PollTierRule.poll_id == poll.id, PollTierRule.may_vote.is_(True)
                )
            )
        )
        eligible = sum(t.subscriptions for t in now_figures.by_tier if t.tier_id in allowed)
    else:
        eligible = now_figures.patrons
    return Turnout(poll, is_open, ballots, eligible)
