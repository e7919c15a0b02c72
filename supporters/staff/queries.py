"""Read-only report queries: SQL aggregates over the rollups and indexed columns.

Every figure is per currency where it is money (never summed across currencies) and comes
from the rollup tables of :mod:`supporters.staff.models`, whose size grows with the number of
months, currencies and tiers, not with members or payments. The few Python loops here run over
those aggregated rows (one per month and kind), never over members, subscriptions or payments.

Rounding: amounts are integers in minor units. A yearly plan counts as ``amount // 12`` per
month (rounded down, per subscription, as billing's public figures do). Averages and rates
are exact fractions, rounded half up only when shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction

import sqlalchemy as sa

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import (
    OPEN_DISPUTE_STATUSES,
    RESPONSE_DISPUTE_STATUSES,
    Dispute,
    FundingGoal,
    GoalMeasure,
    Payment,
    PaymentKind,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from supporters.db import utcnow
from supporters.extensions import db
from supporters.staff.models import (
    COHORT_OFFSETS,
    CUSTOM_TIER,
    CohortCell,
    DayTotal,
    MovementKind,
    PaymentMonth,
    SubscriptionMonth,
    month_number,
    month_start,
)
from supporters.voting import results
from supporters.voting.models import Poll, PollState, PollTierRule

MRR_KINDS = (
    MovementKind.NEW,
    MovementKind.EXPANSION,
    MovementKind.CONTRACTION,
    MovementKind.VOLUNTARY_CHURN,
    MovementKind.FAILED_CHURN,
    MovementKind.REACTIVATION,
)
CHURN_KINDS = (MovementKind.VOLUNTARY_CHURN, MovementKind.FAILED_CHURN)


# -- month series -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PatronMonth:
    """Head counts of one calendar month (UTC)."""

    month: int
    patrons_at_start: int
    new: int
    reactivated: int
    voluntary_churn: int
    failed_churn: int

    @property
    def start(self) -> dt.date:
        return month_start(self.month)

    @property
    def churned(self) -> int:
        return self.voluntary_churn + self.failed_churn

    @property
    def patrons_at_end(self) -> int:
        return self.patrons_at_start + self.new + self.reactivated - self.churned

    @property
    def churn_rate(self) -> Fraction | None:
        """Patrons who stopped during the month ÷ patrons at its start."""
        if not self.patrons_at_start:
            return None
        return Fraction(self.churned, self.patrons_at_start)


@dataclasses.dataclass(frozen=True)
class RevenueMonth:
    """Recurring revenue and money received in one currency and month."""

    month: int
    currency: str
    mrr_at_start: int
    movements: dict[MovementKind, int]
    paid: int = 0  # subscription payments received in the month
    gifts: int = 0  # one-time gifts received in the month
    refunded: int = 0  # of the month's payments, refunded since
    disputed: int = 0  # of the month's payments, withheld by disputes now (open or lost)

    @property
    def start(self) -> dt.date:
        return month_start(self.month)

    @property
    def net_movement(self) -> int:
        return sum(self.movements.values())

    @property
    def mrr_at_end(self) -> int:
        return self.mrr_at_start + self.net_movement

    @property
    def received(self) -> int:
        """Everything paid in the month, net of what refunds and disputes took back of it."""
        return self.paid + self.gifts - self.refunded - self.disputed


def last_months(count: int, now: dt.datetime | None = None) -> list[int]:
    """The current month and the ``count - 1`` before it, oldest first."""
    current = month_number(now or utcnow())
    return list(range(current - count + 1, current + 1))


def patron_months(months: Sequence[int]) -> list[PatronMonth]:
    """New, returning and leaving patrons per month, with the count at each month's start."""
    if not months:
        return []
    first = months[0]
    t = SubscriptionMonth.__table__.c
    before = db.session.scalar(sa.select(sa.func.sum(t.patrons)).where(t.month < first)) or 0
    rows = db.session.execute(
        sa.select(t.month, t.kind, sa.func.sum(t.patrons))
        .where(t.month.between(first, months[-1]), t.patrons != 0)
        .group_by(t.month, t.kind)
    ).all()
    counts: dict[int, dict[MovementKind, int]] = defaultdict(dict)
    for month, kind, patrons in rows:
        counts[month][kind] = int(patrons)
    result = []
    at_start = int(before)
    for month in months:
        c = counts.get(month, {})
        row = PatronMonth(
            month=month,
            patrons_at_start=at_start,
            new=c.get(MovementKind.NEW, 0),
            reactivated=c.get(MovementKind.REACTIVATION, 0),
            voluntary_churn=-c.get(MovementKind.VOLUNTARY_CHURN, 0),
            failed_churn=-c.get(MovementKind.FAILED_CHURN, 0),
        )
        result.append(row)
        at_start = row.patrons_at_end
    return result


def revenue_months(months: Sequence[int]) -> dict[str, list[RevenueMonth]]:
    """MRR at each month's start and its movements, and money received, per currency."""
    if not months:
        return {}
    first, last = months[0], months[-1]
    t = SubscriptionMonth.__table__.c
    p = PaymentMonth.__table__.c
    before = dict(
        db.session.execute(
            sa.select(t.currency, sa.func.sum(t.mrr)).where(t.month < first).group_by(t.currency)
        ).all()
    )
    movements: dict[tuple[str, int], dict[MovementKind, int]] = defaultdict(dict)
    for month, currency, kind, mrr in db.session.execute(
        sa.select(t.month, t.currency, t.kind, sa.func.sum(t.mrr))
        .where(t.month.between(first, last))
        .group_by(t.month, t.currency, t.kind)
    ):
        movements[(currency, month)][kind] = int(mrr)
    received: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for month, currency, kind, paid, refunded, disputed in db.session.execute(
        sa.select(
            p.month,
            p.currency,
            p.kind,
            sa.func.sum(p.paid_amount),
            sa.func.sum(p.refunded_amount),
            sa.func.sum(p.disputed_amount),
        )
        .where(p.month.between(first, last))
        .group_by(p.month, p.currency, p.kind)
    ):
        cell = received[(currency, month)]
        cell["gifts" if kind is PaymentKind.ONE_TIME else "paid"] += int(paid)
        cell["refunded"] += int(refunded)
        cell["disputed"] += int(disputed)
    currencies = sorted({c for c in before} | {c for c, _ in movements} | {c for c, _ in received})
    result: dict[str, list[RevenueMonth]] = {}
    for currency in currencies:
        at_start = int(before.get(currency) or 0)
        series = []
        for month in months:
            kinds = movements.get((currency, month), {})
            money = received.get((currency, month), {})
            row = RevenueMonth(
                month=month,
                currency=currency,
                mrr_at_start=at_start,
                movements={kind: kinds.get(kind, 0) for kind in MRR_KINDS},
                paid=money.get("paid", 0),
                gifts=money.get("gifts", 0),
                refunded=money.get("refunded", 0),
                disputed=money.get("disputed", 0),
            )
            # Transfers between tiers net to zero within a currency; kept out of the table.
            at_start = row.mrr_at_end + kinds.get(MovementKind.TRANSFER, 0)
            series.append(row)
        result[currency] = series
    return result


# -- now ---------------------------------------------------------------------------------------


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

    def average_revenue(self, currency: str) -> Fraction | None:
        """MRR ÷ paying subscriptions in the currency (a member has at most one live one)."""
        count = self.subscriptions.get(currency, 0)
        return Fraction(self.mrr.get(currency, 0), count) if count else None


def now_figures(now: dt.datetime | None = None) -> Now:
    """Patrons and MRR now (sums of the whole ledger) and 30 days before."""
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
    return Now(
        patrons=patrons,
        patrons_30_days_ago=patrons - sum(p for _, p in recent.values()),
        mrr=mrr,
        mrr_30_days_ago={c: m - recent.get(c, (0, 0))[0] for c, m in mrr.items()},
        subscriptions={c: int(s) for c, m, s, p in totals if c in mrr},
        by_tier=by_tier,
    )


# -- goals, failures, polls --------------------------------------------------------------------


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
class FailureMonth:
    """Payments that first failed in a month: recovered since, or not (yet)."""

    month: int
    currency: str
    failed_count: int
    failed_amount: int
    recovered_count: int
    recovered_amount: int

    @property
    def start(self) -> dt.date:
        return month_start(self.month)

    @property
    def total_count(self) -> int:
        return self.failed_count + self.recovered_count

    @property
    def recovery_rate(self) -> Fraction | None:
        return Fraction(self.recovered_count, self.total_count) if self.total_count else None


def failure_months(months: Sequence[int]) -> list[FailureMonth]:
    if not months:
        return []
    p = PaymentMonth.__table__.c
    rows = db.session.execute(
        sa.select(
            p.month,
            p.currency,
            sa.func.sum(p.failed_count),
            sa.func.sum(p.failed_amount),
            sa.func.sum(p.recovered_count),
            sa.func.sum(p.recovered_amount),
        )
        .where(p.month.between(months[0], months[-1]))
        .group_by(p.month, p.currency)
        .having(sa.func.sum(p.failed_count) + sa.func.sum(p.recovered_count) != 0)
        .order_by(p.month, p.currency)
    ).all()
    return [FailureMonth(m, c, int(fc), int(fa), int(rc), int(ra)) for m, c, fc, fa, rc, ra in rows]


def past_due_count() -> int:
    """Subscriptions whose renewal failed and is being retried (indexed on status)."""
    return int(
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Subscription)
            .where(Subscription.status == SubscriptionStatus.PAST_DUE)
        )
        or 0
    )


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


# -- beyond the basics -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cohort:
    """Members who first became patrons in a month, and how many still were later."""

    month: int
    size: int
    retained: dict[int, int | None]  # months after -> patrons then (None: not yet known)

    @property
    def start(self) -> dt.date:
        return month_start(self.month)

    def share(self, offset: int) -> Fraction | None:
        value = self.retained.get(offset)
        return None if value is None or not self.size else Fraction(value, self.size)


def cohorts(months: Sequence[int], now: dt.datetime | None = None) -> list[Cohort]:
    """Sign-up cohorts; a cell is known once its month has ended."""
    if not months:
        return []
    current = month_number(now or utcnow())
    t = SubscriptionMonth.__table__.c
    c = CohortCell.__table__.c
    sizes = dict(
        db.session.execute(
            sa.select(t.month, sa.func.sum(t.patrons))
            .where(t.kind == MovementKind.NEW, t.month.between(months[0], months[-1]))
            .group_by(t.month)
        ).all()
    )
    cells = {
        (m, k): int(v)
        for m, k, v in db.session.execute(
            sa.select(c.cohort_month, c.months_after, c.patrons).where(
                c.cohort_month.between(months[0], months[-1])
            )
        )
    }
    return [
        Cohort(
            month=month,
            size=int(sizes.get(month) or 0),
            retained={
                k: (cells.get((month, k), 0) if month + k < current else None)
                for k in COHORT_OFFSETS
            },
        )
        for month in months
    ]


@dataclasses.dataclass(frozen=True)
class LifetimeValue:
    currency: str
    average_revenue: Fraction | None  # per paying subscription per month, now
    average_churn: Fraction | None  # mean monthly churn rate of the last 12 complete months
    received_per_patron: Fraction | None  # subscription money kept ÷ patrons ever

    @property
    def estimate(self) -> Fraction | None:
        """Average revenue per patron ÷ average monthly churn rate."""
        if self.average_revenue is None or not self.average_churn:
            return None
        return self.average_revenue / self.average_churn


def lifetime_values(now_figures: Now, now: dt.datetime | None = None) -> list[LifetimeValue]:
    complete = last_months(13, now)[:-1]  # the twelve months before this one
    rates = [m.churn_rate for m in patron_months(complete) if m.churn_rate is not None]
    average_churn = sum(rates, Fraction(0)) / len(rates) if rates else None
    t = SubscriptionMonth.__table__.c
    p = PaymentMonth.__table__.c
    ever = dict(
        db.session.execute(
            sa.select(t.currency, sa.func.sum(t.patrons))
            .where(t.kind == MovementKind.NEW)
            .group_by(t.currency)
        ).all()
    )
    received = dict(
        db.session.execute(
            sa.select(
                p.currency, sa.func.sum(p.paid_amount - p.refunded_amount - p.disputed_amount)
            )
            .where(p.kind == PaymentKind.SUBSCRIPTION)
            .group_by(p.currency)
        ).all()
    )
    currencies = sorted(set(now_figures.mrr) | set(received))
    return [
        LifetimeValue(
            currency=currency,
            average_revenue=now_figures.average_revenue(currency),
            average_churn=average_churn,
            received_per_patron=(
                Fraction(int(received.get(currency) or 0), int(ever[currency]))
                if ever.get(currency)
                else None
            ),
        )
        for currency in currencies
    ]


@dataclasses.dataclass(frozen=True)
class AtRisk:
    subscription: Subscription
    reason: str  # "past_due" or "ending"


def at_risk(limit: int | None = 200) -> list[AtRisk]:
    """Patrons past due (renewal failed) and patrons whose cancellation is scheduled."""
    past_due = (
        sa.select(Subscription)
        .where(Subscription.status == SubscriptionStatus.PAST_DUE)
        .order_by(Subscription.current_period_start, Subscription.id)
    )
    ending = (
        sa.select(Subscription)
        .where(
            Subscription.cancel_at_period_end.is_(True),
            Subscription.status.in_(COUNTED_STATUSES),
        )
        .order_by(Subscription.current_period_end, Subscription.id)
    )
    if limit is not None:
        past_due, ending = past_due.limit(limit), ending.limit(limit)
    options = sa.orm.joinedload(Subscription.member), sa.orm.joinedload(Subscription.tier)
    rows = [AtRisk(s, "past_due") for s in db.session.scalars(past_due.options(*options))]
    rows += [
        AtRisk(s, "ending")
        for s in db.session.scalars(ending.options(*options))
        if s.status is not SubscriptionStatus.PAST_DUE
    ]
    return rows


def failed_payments_in(month: int) -> tuple[int, dict[str, int]]:
    """Payments that first failed in a month and are not paid: count, amounts per currency."""
    p = PaymentMonth.__table__.c
    rows = db.session.execute(
        sa.select(p.currency, sa.func.sum(p.failed_count), sa.func.sum(p.failed_amount))
        .where(p.month == month)
        .group_by(p.currency)
    ).all()
    return sum(int(c) for _, c, _ in rows), {cur: int(a) for cur, c, a in rows if c}


# -- disputes ------------------------------------------------------------------------------------

_DISPUTE_ROWS = (sa.orm.joinedload(Dispute.payment).joinedload(Payment.member),)


def open_disputes(limit: int = 200) -> list[Dispute]:
    """Disputes not decided yet: those waiting for evidence first, the soonest deadline first."""
    waiting = sa.case((Dispute.status.in_(RESPONSE_DISPUTE_STATUSES), 0), else_=1)
    return list(
        db.session.scalars(
            sa.select(Dispute)
            .where(Dispute.status.in_(OPEN_DISPUTE_STATUSES))
            .order_by(waiting, Dispute.evidence_due_at.asc().nulls_last(), Dispute.id)
            .limit(limit)
            .options(*_DISPUTE_ROWS)
        )
    )


def closed_disputes(limit: int = 50) -> list[Dispute]:
    """The disputes decided last, the latest first."""
    return list(
        db.session.scalars(
            sa.select(Dispute)
            .where(Dispute.status.not_in(OPEN_DISPUTE_STATUSES))
            .order_by(Dispute.closed_at.desc().nulls_last(), Dispute.id.desc())
            .limit(limit)
            .options(*_DISPUTE_ROWS)
        )
    )


def disputes_of(member_id: int) -> list[Dispute]:
    """A member's disputes, the latest opened first."""
    return list(
        db.session.scalars(
            sa.select(Dispute)
            .join(Payment, Payment.id == Dispute.payment_id)
            .where(Payment.member_id == member_id)
            .order_by(Dispute.opened_at.desc(), Dispute.id.desc())
            .options(sa.orm.contains_eager(Dispute.payment))
        )
    )


@dataclasses.dataclass(frozen=True)
class DisputesDue:
    """Open disputes, and the soonest deadline of those waiting for evidence."""

    count: int
    soonest_due_at: dt.datetime | None


def disputes_due() -> DisputesDue:
    """How many disputes are open, and when the first answer is due (the overview's figure)."""
    waiting = Dispute.status.in_(RESPONSE_DISPUTE_STATUSES)
    count, soonest = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(Dispute.evidence_due_at).filter(waiting)).where(
            Dispute.status.in_(OPEN_DISPUTE_STATUSES)
        )
    ).one()
    return DisputesDue(int(count), soonest)
