"""Subscription histories brought in bulk: from another system, or the demo's invented patrons.

Each subscription comes with its member's customer and its invoices, and each kind of row goes
in as one statement, so an import of thousands costs three round trips. Rows written so
bypass the session's per-row listeners: whatever keeps tables derived from payments and
subscriptions (the staff reports) is rebuilt by the caller, in the same transaction. Services
flush and never commit; the command commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from supporters.billing.models import (
    Customer,
    Interval,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from supporters.db import insert_many


class ImportedPayment(NamedTuple):
    """One invoice of an imported subscription, paid (and perhaps partly refunded) or failed."""

    stripe_invoice_id: str
    amount: int
    status: PaymentStatus
    created_at: dt.datetime
    paid_at: dt.datetime | None = None
    failed_at: dt.datetime | None = None
    refunded_amount: int = 0
    failure_message: str = ""


class ImportedSubscription(NamedTuple):
    """A subscription as the payment provider has it, with its member's customer and invoices."""

    member_id: int
    stripe_customer_id: str
    stripe_subscription_id: str
    tier_id: int | None  # None: a custom amount
    interval: Interval
    amount: int
    currency: str
    status: SubscriptionStatus
    started_at: dt.datetime
    current_period_start: dt.datetime
    current_period_end: dt.datetime
    cancel_at_period_end: bool = False
    cancel_reason: str = ""
    canceled_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    payments: Sequence[ImportedPayment] = ()

    @property
    def updated_at(self) -> dt.datetime:
        """When it last changed, as far as its history tells: its latest event or invoice."""
        moments = [self.started_at, *(p.created_at for p in self.payments)]
        return max(m for m in (*moments, self.canceled_at, self.ended_at) if m is not None)


def import_subscriptions(subscriptions: Sequence[ImportedSubscription]) -> None:
    """Add subscriptions with their members' customers and their payments, in bulk.

    A customer is made for each member and customer id named, as old as the member's first
    subscription here.

    :raises sqlalchemy.exc.IntegrityError: a member has a customer already (or two are named
        for one), or a Stripe id is taken; roll back.
    """
    customers: dict[tuple[int, str], dt.datetime] = {}
    for subscription in subscriptions:
        key = (subscription.member_id, subscription.stripe_customer_id)
        known = customers.get(key)
        if known is None or subscription.started_at < known:
            customers[key] = subscription.started_at
    insert_many(
        Customer,
        [
            {"member_id": member_id, "stripe_customer_id": customer_id, "created_at": created}
            for (member_id, customer_id), created in customers.items()
        ],
    )
    subscription_ids = insert_many(
        Subscription,
        [
            {
                "member_id": s.member_id,
                "tier_id": s.tier_id,
                "interval": s.interval,
                "amount": s.amount,
                "currency": s.currency,
                "status": s.status,
                "stripe_subscription_id": s.stripe_subscription_id,
                "stripe_customer_id": s.stripe_customer_id,
                "current_period_start": s.current_period_start,
                "current_period_end": s.current_period_end,
                "cancel_at_period_end": s.cancel_at_period_end,
                "cancel_reason": s.cancel_reason,
                "started_at": s.started_at,
                "canceled_at": s.canceled_at,
                "ended_at": s.ended_at,
                "created_at": s.started_at,
                "updated_at": s.updated_at,
            }
            for s in subscriptions
        ],
        returning_ids=True,
    )
    insert_many(
        Payment,
        [
            {
                "member_id": subscription.member_id,
                "subscription_id": subscription_id,
                "kind": PaymentKind.SUBSCRIPTION,
                "stripe_invoice_id": p.stripe_invoice_id,
                "amount": p.amount,
                "currency": subscription.currency,
                "status": p.status,
                "refunded_amount": p.refunded_amount,
                "failure_message": p.failure_message,
                "paid_at": p.paid_at,
                "failed_at": p.failed_at,
                "created_at": p.created_at,
            }
            for subscription_id, subscription in zip(subscription_ids, subscriptions, strict=True)
            for p in subscription.payments
        ],
    )
