"""The payments ledger: a row per invoice of a subscription and per one-time gift, and what
refunds took back of them.

:func:`record_invoice` is the only way an invoice's row changes: the webhook, the success page,
reconciliation and the demo checkout call it with what the payment provider says now, so
arrival order and repetition do not matter. Services flush; the caller commits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters.billing import emails
from supporters.billing.customers import customer_member, member_for_customer
from supporters.billing.errors import Ignored, UnknownCharge
from supporters.billing.models import Payment, PaymentKind, PaymentStatus, Subscription
from supporters.billing.provider import ChargeInfo, CheckoutInfo, InvoiceInfo
from supporters.db import assign_changed, insert_ignoring_conflicts, insert_returning, utcnow
from supporters.extensions import db


def _payment_status(info: InvoiceInfo) -> PaymentStatus | None:
    if info.status == "paid":
        return PaymentStatus.PAID
    if info.status == "uncollectible" or (info.status == "open" and info.attempt_count > 0):
        return PaymentStatus.FAILED
    if info.status == "open":
        return PaymentStatus.PENDING
    return None  # draft and void invoices move no money


@functools.cache
def _invoice_lookups() -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """The member of the customer ``customer_ref`` and our subscription of the Stripe id
    ``subscription_ref`` (NULL when none), as subqueries with bind parameters, built once."""
    member = customer_member(sa.bindparam("customer_ref", type_=sa.String))
    subscription = (
        sa.select(Subscription.id)
        .where(Subscription.stripe_subscription_id == sa.bindparam("subscription_ref"))
        .scalar_subquery()
    )
    return member, subscription


def _invoice_computed_columns() -> dict[str, sa.ColumnElement[Any]]:
    """What record_invoice's INSERT looks up: the member, the subscription, and the payment
    intent ``intent_ref``, claimed unless another payment holds it (see _claim_payment_intent).
    """
    member, subscription = _invoice_lookups()
    intent = sa.bindparam("intent_ref", type_=sa.String)
    unclaimed_intent = (
        sa.select(intent)
        .where(~sa.exists().where(Payment.stripe_payment_intent_id == intent))
        .scalar_subquery()
    )
    return {
        "member_id": member,
        "subscription_id": subscription,
        "stripe_payment_intent_id": unclaimed_intent,
    }


@functools.cache
def _invoice_lock() -> sa.Select[Any]:
    """A payment recorded before (``invoice_ref``), locked, with the lookups; built once."""
    member, subscription = _invoice_lookups()
    return (
        sa.select(Payment, member, subscription)
        .where(Payment.stripe_invoice_id == sa.bindparam("invoice_ref"))
        .with_for_update(of=Payment)
        .execution_options(populate_existing=True)
    )


def record_invoice(info: InvoiceInfo) -> Payment | None:
    """Upsert the ledger row of an invoice from what the provider says now. Idempotent.

    Only invoices of subscriptions are support: callers sync the subscription first
    (``subscriptions.sync_subscription`` refuses one that is not support). Returns None for invoices that
    move no money (drafts, voided, zero amounts).

    :raises Ignored: the invoice belongs to no subscription (a one-off invoice, which the
        newsroom may make in the Dashboard on a member's customer for something else).
    """
    if info.subscription_id is None:
        raise Ignored(
            f"invoice {info.id} belongs to no subscription: a one-off invoice is not support"
        )
    status = _payment_status(info)
    amount = info.amount_paid if status is PaymentStatus.PAID else info.amount_due
    if status is None or amount <= 0:
        return None
    now = utcnow()
    paid = status is PaymentStatus.PAID
    failed = status is PaymentStatus.FAILED
    # The member, the subscription and the payment intent are looked up by the statement that
    # writes or locks (see _invoice_computed_columns and _invoice_lock).
    lookups = {"customer_ref": info.customer_id, "subscription_ref": info.subscription_id}
    values: dict[str, object] = {
        **lookups,
        "intent_ref": info.payment_intent_id,
        "stripe_invoice_id": info.id,
        "kind": PaymentKind.SUBSCRIPTION,
        "amount": amount,
        "currency": info.currency,
        "status": status,
        "refunded_amount": 0,
        "failure_message": _("The card was declined.") if failed else "",
        "receipt_url": info.receipt_url,
        "stripe_charge_id": info.charge_id,
        "created_at": info.created_at or now,
        "paid_at": (info.paid_at or now) if paid else None,
        "failed_at": now if failed else None,
    }
    inserted = insert_returning(
        Payment, values, conflict_on=["stripe_invoice_id"], computed=_invoice_computed_columns
    )
    if inserted is not None:
        emails.payment_recorded(inserted, previous=None)
        return inserted
    # Recorded before: lock the row and bring it up to date.
    found = db.session.execute(_invoice_lock(), {**lookups, "invoice_ref": info.id}).one()
    payment: Payment = found[0]
    found_member_id: int | None = found[1]
    found_subscription_id: int | None = found[2]
    if info.payment_intent_id and payment.stripe_payment_intent_id != info.payment_intent_id:
        _claim_payment_intent(payment, info.payment_intent_id)
    changes: dict[str, object] = {
        "member_id": payment.member_id or found_member_id,
        "subscription_id": found_subscription_id or payment.subscription_id,
        "amount": amount,
        "currency": info.currency,
        "receipt_url": info.receipt_url or payment.receipt_url,
        "stripe_charge_id": info.charge_id or payment.stripe_charge_id,
    }
    if payment.status is not PaymentStatus.PAID:  # a paid invoice never goes back
        changes["status"] = status
    if status is PaymentStatus.PAID:
        changes["paid_at"] = info.paid_at or payment.paid_at or now
    elif status is PaymentStatus.FAILED and payment.failed_at is None:
        changes["failed_at"] = now
        changes["failure_message"] = _("The card was declined.")
    previous = payment.status
    assign_changed(payment, changes)
    db.session.flush()
    emails.payment_recorded(payment, previous=previous)
    return payment


def _claim_payment_intent(payment: Payment, payment_intent_id: str) -> None:
    other = db.session.scalar(
        sa.select(Payment).where(
            Payment.stripe_payment_intent_id == payment_intent_id, Payment.id != payment.id
        )
    )
    if other is None:
        payment.stripe_payment_intent_id = payment_intent_id


def record_gift(checkout: CheckoutInfo) -> Payment | None:
    """Record a paid one-time gift and its receipt from its checkout. Idempotent by intent."""
    if not checkout.payment_intent_id or not checkout.amount_total or not checkout.currency:
        return None
    member_id = None
    if checkout.customer_id:
        member_id = member_for_customer(checkout.customer_id)
    now = utcnow()
    is_new = insert_ignoring_conflicts(
        Payment,
        {
            "stripe_payment_intent_id": checkout.payment_intent_id,
            "member_id": member_id,
            "kind": PaymentKind.ONE_TIME,
            "amount": checkout.amount_total,
            "currency": checkout.currency,
            "status": PaymentStatus.PAID,
            "refunded_amount": 0,
            "failure_message": "",
            "receipt_url": checkout.receipt_url,
            "stripe_charge_id": checkout.charge_id,
            "paid_at": now,
            "created_at": now,
        },
    )
    gift = db.session.scalars(
        sa.select(Payment).where(Payment.stripe_payment_intent_id == checkout.payment_intent_id)
    ).one()
    if is_new:
        emails.gift_recorded(gift)
    # A gift recorded before receipts were kept gets its own the next time its checkout is read.
    if checkout.receipt_url and not gift.receipt_url:
        gift.receipt_url = checkout.receipt_url
        gift.stripe_charge_id = gift.stripe_charge_id or checkout.charge_id
        db.session.flush()
    return gift


def record_charge(info: ChargeInfo) -> Payment:
    """Apply a refund to the payment the charge belongs to. Idempotent.

    The refunded amount is the charge's total refunded so far, never an increment, so a
    repeated or late event cannot refund twice.

    :raises UnknownCharge: the charge is none of the payments recorded here (yet).
    """
    conditions = [Payment.stripe_charge_id == info.id]
    if info.payment_intent_id:
        conditions.append(Payment.stripe_payment_intent_id == info.payment_intent_id)
    payment = db.session.scalars(
        sa.select(Payment).where(sa.or_(*conditions)).with_for_update()
    ).first()
    if payment is None:
        raise UnknownCharge(f"charge {info.id} matches no payment here")
    payment.stripe_charge_id = payment.stripe_charge_id or info.id
    payment.refunded_amount = min(
        max(info.amount_refunded, payment.refunded_amount), payment.amount
    )
    payment.receipt_url = payment.receipt_url or info.receipt_url
    db.session.flush()
    return payment


def payments_of(member_id: int, limit: int = 100) -> Sequence[Payment]:
    """The member's payments, newest first: their receipts, and what staff see of them."""
    return db.session.scalars(
        sa.select(Payment)
        .where(Payment.member_id == member_id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(limit)
    ).all()
