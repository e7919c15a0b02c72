"""Patrons and recurring revenue month by month: head counts, MRR movements, money received.

Months are month numbers (:func:`supporters.staff.models.month_number`); every series is read
from the rollups, one row per month and kind.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction

import sqlalchemy as sa

from supporters.billing.models import PaymentKind
from supporters.db import utcnow
from supporters.extensions import db
from supporters.staff.models import (
    MovementKind,
    PaymentMonth,
    SubscriptionMonth,
    month_number,
    month_start,
)

MRR_KINDS = (
    MovementKind.NEW,
    MovementKind.EXPANSION,
    MovementKind.CONTRACTION,
    MovementKind.VOLUNTARY_CHURN,
    MovementKind.FAILED_CHURN,
    MovementKind.REACTIVATION,
)
CHURN_KINDS = (MovementKind.VOLUNTARY_CHURN, MovementKind.FAILED_CHURN)


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
