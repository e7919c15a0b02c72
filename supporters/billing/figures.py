"""The figures readers see: patrons and recurring revenue, and how far a funding goal has come.

The support page is the page every reader lands on, so it does not count subscriptions on each
visit: a feature above billing (staff, whose report tables are kept in the same transaction as
every payment) hands it a reader of its totals from ``create_app`` (:func:`use_totals`). Without
one (a bare app in a test), the totals are counted from the subscriptions, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import sqlalchemy as sa
from flask import Flask, current_app

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import FundingGoal, GoalMeasure, Interval, Subscription
from supporters.extensions import db

_TOTALS_READER = "supporters.billing.totals_reader"


@dataclasses.dataclass(frozen=True)
class Totals:
    """Patrons now, and recurring revenue per month in each currency (minor units)."""

    patrons: int
    mrr: Mapping[str, int]


def use_totals(app: Flask, reader: Callable[[], Totals]) -> None:
    """Read the totals with ``reader`` (registered from ``create_app`` by a higher feature)."""
    app.extensions[_TOTALS_READER] = reader


def totals() -> Totals:
    """Patrons and recurring revenue now: from the registered reader, else counted here."""
    reader: Callable[[], Totals] | None = current_app.extensions.get(_TOTALS_READER)
    if reader is not None:
        return reader()
    return Totals(patron_count(), _revenue_by_currency())


def monthly_revenue(currency: str) -> int:
    """Recurring revenue per month in one currency, in minor units (a yearly plan is a twelfth)."""
    return _revenue_by_currency(currency).get(currency, 0)


def _revenue_by_currency(currency: str | None = None) -> dict[str, int]:
    monthly = sa.case(
        # Integer division per subscription, as Subscription.monthly_amount and the reports do.
        (Subscription.interval == Interval.YEAR, Subscription.amount // 12),
        else_=Subscription.amount,
    )
    query = (
        sa.select(Subscription.currency, sa.func.sum(monthly))
        .where(Subscription.status.in_(COUNTED_STATUSES))
        .group_by(Subscription.currency)
    )
    if currency is not None:
        query = query.where(Subscription.currency == currency)
    return {c: int(total or 0) for c, total in db.session.execute(query)}


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


def goal_value(goal: FundingGoal, now: Totals) -> int:
    """How far a funding goal has come: minor units per month, or a number of patrons."""
    if goal.measure is GoalMeasure.PATRONS:
        return now.patrons
    assert goal.currency is not None  # the CHECK constraint guarantees it
    return now.mrr.get(goal.currency, 0)


def goal_progress(goal: FundingGoal) -> int:
    """How far one funding goal has come (see :func:`goal_value`)."""
    return goal_value(goal, totals())
