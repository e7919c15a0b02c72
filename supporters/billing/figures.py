"""The figures readers see: patrons and recurring revenue, and how far a funding goal has come."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import FundingGoal, GoalMeasure, Interval, Subscription
from supporters.extensions import db


def monthly_revenue(currency: str) -> int:
    """Recurring revenue per month in one currency, in minor units (a yearly plan is a twelfth)."""
    monthly = sa.case(
        # Integer division per subscription, as Subscription.monthly_amount and the reports do.
        (Subscription.interval == Interval.YEAR, Subscription.amount // 12),
        else_=Subscription.amount,
    )
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(monthly), 0)).where(
            Subscription.status.in_(COUNTED_STATUSES), Subscription.currency == currency
        )
    )
    return int(total or 0)


def patron_count() -> int:
    """Members with at least one subscription that counts."""
    count = db.session.scalar(
        sa.select(sa.func.count(sa.distinct(Subscription.member_id))).where(
            Subscription.status.in_(COUNTED_STATUSES)
        )
    )
    return int(count or 0)


def active_goals() -> Sequence[FundingGoal]:
    """The funding goals shown on the support page, in their order."""
    return db.session.scalars(
        sa.select(FundingGoal).where(FundingGoal.is_active).order_by(FundingGoal.position)
    ).all()


def goal_progress(goal: FundingGoal) -> int:
    """How far a funding goal has come: minor units per month, or a number of patrons."""
    if goal.measure is GoalMeasure.PATRONS:
        return patron_count()
    assert goal.currency is not None  # the CHECK constraint guarantees it
    return monthly_revenue(goal.currency)
