"""What may be lost: payments that failed (recovered since, or not), and patrons at risk.

Patrons at risk are those past due (a renewal failed and is being retried) and those whose
cancellation is scheduled; both lists are read in index order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from fractions import Fraction

import sqlalchemy as sa

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import Subscription, SubscriptionStatus
from supporters.extensions import db
from supporters.staff.models import PaymentMonth, month_start


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
    """Per month and currency, payments that first failed then: recovered since, or not."""
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
