"""Read-only report queries: SQL aggregates, never Python loops over rows."""

from __future__ import annotations

import sqlalchemy as sa

from supporters.billing.models import Payment, PaymentStatus, Subscription, SubscriptionStatus
from supporters.extensions import db
from supporters.members.models import Member


def subscriptions_by_status() -> dict[SubscriptionStatus, int]:
    rows = db.session.execute(
        sa.select(Subscription.status, sa.func.count()).group_by(Subscription.status)
    ).all()
    return {status: count for status, count in rows}


def member_count() -> int:
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(Member)) or 0)


def paid_totals_by_currency() -> dict[str, int]:
    """Everything ever paid, net of refunds, one figure per currency."""
    rows = db.session.execute(
        sa.select(Payment.currency, sa.func.sum(Payment.amount - Payment.refunded_amount))
        .where(Payment.status == PaymentStatus.PAID)
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    ).all()
    return {currency: int(total) for currency, total in rows}


def recent_members(limit: int = 10) -> list[Member]:
    return list(
        db.session.scalars(sa.select(Member).order_by(Member.created_at.desc()).limit(limit))
    )
