"""Retention: sign-up cohorts, and the average lifetime value of a patron."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from fractions import Fraction

import sqlalchemy as sa

from supporters.billing.models import PaymentKind
from supporters.db import utcnow
from supporters.extensions import db
from supporters.staff.models import (
    COHORT_OFFSETS,
    CohortCell,
    MovementKind,
    PaymentMonth,
    SubscriptionMonth,
    month_number,
    month_start,
)
from supporters.staff.queries.headline import Now
from supporters.staff.queries.monthly import last_months, patron_months


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
    """Per currency: average revenue per patron, average monthly churn, and what they imply."""
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
