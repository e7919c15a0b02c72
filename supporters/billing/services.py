"""Billing operations and the read-side figures the public pages show."""

from __future__ import annotations

import sqlalchemy as sa

from supporters.billing.models import (
    FundingGoal,
    GoalMeasure,
    Interval,
    Subscription,
    SubscriptionStatus,
)
from supporters.extensions import db

# Statuses in which a subscription counts as a paying patron (past_due: within the grace period
# Stripe is still retrying the card).
COUNTED_STATUSES = (
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PAST_DUE,
)


def monthly_revenue(currency: str) -> int:
    """Recurring revenue per month in one currency, in minor units (a yearly plan is a twelfth)."""
    monthly = sa.case(
        (Subscription.interval == Interval.YEAR, Subscription.amount / 12),
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
    return int(
        db.session.scalar(
            sa.select(sa.func.count(sa.distinct(Subscription.member_id))).where(
                Subscription.status.in_(COUNTED_STATUSES)
            )
        )
        or 0
    )


def goal_progress(goal: FundingGoal) -> int:
    """How far a funding goal has come: minor units per month, or a number of patrons."""
    if goal.measure is GoalMeasure.PATRONS:
        return patron_count()
    assert goal.currency is not None  # the CHECK constraint guarantees it
    return monthly_revenue(goal.currency)
