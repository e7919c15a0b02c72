"""Subscriptions as the payment provider has them: the idempotent sync, what counts as support,
and the one live subscription a member may have.

:func:`sync_subscription` is the only way a subscription's row changes after a checkout: the
webhook, the success page, reconciliation and the demo checkout call it with what the provider
says now, so arrival order and repetition do not matter. A second subscription that counts for
the same member is cancelled and refunded. Services flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from supporters.audit import AuditEntry, record_action
from supporters.billing import emails
from supporters.billing.backend import backend
from supporters.billing.choices import CUSTOM
from supporters.billing.customers import lock_member_of
from supporters.billing.errors import ForeignProduct, UnknownCustomer
from supporters.billing.membership import COUNTED_STATUSES, LIVE_STATUSES
from supporters.billing.models import Interval, Offer, Subscription, SubscriptionStatus, Tier
from supporters.billing.payments import record_charge, record_invoice
from supporters.billing.provider import SubscriptionInfo
from supporters.db import assign_changed, insert_returning, utcnow
from supporters.extensions import db

log = logging.getLogger(__name__)


# The audit action of a duplicate subscription cancelled and refunded (actor: the system).
DUPLICATE_CANCELLED = "billing.duplicate_cancelled"


def live_subscription(member_id: int) -> Subscription | None:
    """The member's live subscription (incomplete, active, past due...), if any."""
    return db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.member_id == member_id, Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.created_at.desc())
        .limit(1)
    ).first()


def _price_tier(price_id: sa.BindParameter[str | None]) -> sa.ScalarSelect[int]:
    """The tier selling a price, as a subquery (NULL when none does, or for no price)."""
    return (
        sa.select(Tier.id)
        .where(
            sa.or_(
                Tier.stripe_monthly_price_id == price_id, Tier.stripe_yearly_price_id == price_id
            )
        )
        .scalar_subquery()
    )


def _product_tier(product_id: sa.BindParameter[str | None]) -> sa.ScalarSelect[int]:
    """The tier whose product this is, as a subquery (NULL when none is)."""
    return sa.select(Tier.id).where(Tier.stripe_product_id == product_id).scalar_subquery()


def _selling_tier(
    price_id: sa.BindParameter[str | None], product_id: sa.BindParameter[str | None]
) -> sa.ColumnElement[int | None]:
    """The tier selling the price, else the tier whose product it is (an older price of it)."""
    return sa.func.coalesce(_price_tier(price_id), _product_tier(product_id))


def _is_custom_product(product_id: str | None) -> bool:
    """Whether this is the product custom amounts are sold under (cached by the backend)."""
    return product_id is not None and product_id == backend().custom_product_id()


def is_support(info: SubscriptionInfo) -> bool:
    """Whether a subscription sells what this installation made: a tier, or a custom amount."""
    tier_id = db.session.scalar(
        sa.select(
            _selling_tier(
                sa.bindparam("price_id", info.price_id, type_=sa.String),
                sa.bindparam("product_id", info.product_id, type_=sa.String),
            )
        )
    )
    return tier_id is not None or _is_custom_product(info.product_id)


def _tier_for(info: SubscriptionInfo, tier_id: int | None) -> int | None:
    """The tier selling it (looked up already); else, under the custom-amount product, the tier
    metadata names if the amount matches it (the demo checkout sells tiers so)."""
    if tier_id is not None:
        return tier_id
    slug = info.metadata.get("tier")
    if slug and slug != CUSTOM:
        tier = db.session.scalar(sa.select(Tier).where(Tier.slug == slug))
        # A tier named in metadata only counts if the amount still matches it.
        if tier is not None and info.amount in (tier.monthly_amount, tier.yearly_amount):
            return tier.id
    return None


class _Found(NamedTuple):
    row: Subscription | None
    member_id: int | None
    tier_id: int | None
    others_counted: int  # the member's other subscriptions that count as support


@functools.cache
def _subscription_queries() -> tuple[sa.Select[Any], sa.Select[Any]]:
    """Our row of a subscription, locked and read afresh, with the tier selling it and the
    member's other counted subscriptions looked up in the same statement; and those two
    alone. Built once."""
    tier = _selling_tier(
        sa.bindparam("price_id", type_=sa.String), sa.bindparam("product_id", type_=sa.String)
    )
    subscription_id = sa.bindparam("subscription_id", type_=sa.String)
    others = (
        sa.select(sa.func.count())
        .where(
            Subscription.member_id == sa.bindparam("member_id"),
            Subscription.status.in_(COUNTED_STATUSES),
            Subscription.stripe_subscription_id != subscription_id,
        )
        .scalar_subquery()
    )
    locked = (
        sa.select(Subscription, tier, others)
        .where(Subscription.stripe_subscription_id == subscription_id)
        .with_for_update(of=Subscription)
        .execution_options(populate_existing=True)
    )
    return locked, sa.select(tier, others)


def _lock_subscription(info: SubscriptionInfo) -> _Found:
    """The customer's member, with their customer row locked (PostgreSQL), so that one member's
    subscriptions change one at a time; then our row of the subscription, locked and read
    afresh, with the tier selling it and the member's other counted subscriptions."""
    member_id = lock_member_of(info.customer_id)
    if member_id is None:
        return _Found(None, None, None, 0)
    # A statement of its own, after the lock: it reads what the member's last change committed.
    locked, lookups = _subscription_queries()
    params = {
        "subscription_id": info.id,
        "member_id": member_id,
        "price_id": info.price_id,
        "product_id": info.product_id,
    }
    found = db.session.execute(locked, params).first()
    if found is not None:
        return _Found(found[0], member_id, found[1], found[2])
    tier_id, others = db.session.execute(lookups, params).one()
    return _Found(None, member_id, tier_id, others)


def sync_subscription(info: SubscriptionInfo) -> Subscription:
    """Make our row say what the provider says about a subscription, now. Idempotent.

    A second subscription that counts for the same member is cancelled and refunded (the newer
    one: see :func:`_cancel_duplicates`).

    :raises UnknownCustomer: the customer belongs to no member here.
    :raises ForeignProduct: it sells neither a tier nor a custom amount of this installation.
    """
    found = _lock_subscription(info)
    if found.member_id is None:
        raise UnknownCustomer(info.customer_id)
    if found.tier_id is None and not _is_custom_product(info.product_id):
        raise ForeignProduct(info)
    row = _write_subscription(info, found)
    if found.others_counted and row.status in COUNTED_STATUSES:
        _cancel_duplicates(found.member_id)
    _mark_offer_used(info, row)
    return row


def _mark_offer_used(info: SubscriptionInfo, row: Subscription) -> None:
    """A subscription started from an offer (its checkout's metadata names it) that counts:
    the offer is used, once."""
    offer_ref = info.metadata.get("offer", "")
    if not offer_ref.isdigit() or len(offer_ref) > 18 or row.status not in COUNTED_STATUSES:
        return
    db.session.execute(
        sa.update(Offer)
        .where(
            Offer.id == int(offer_ref),
            Offer.member_id == row.member_id,
            Offer.used_at.is_(None),
        )
        .values(used_at=utcnow(), subscription_id=row.id)
        .execution_options(synchronize_session="fetch")
    )


def _write_subscription(info: SubscriptionInfo, found: _Found) -> Subscription:
    """Insert or update our row of the subscription (read and locked in ``found``)."""
    now = utcnow()
    status = SubscriptionStatus(info.status)
    values = {
        "member_id": found.member_id,
        "tier_id": _tier_for(info, found.tier_id),
        "interval": Interval(info.interval),
        "currency": info.currency,
        "status": status,
        "stripe_customer_id": info.customer_id,
        "stripe_price_id": info.price_id,
        "current_period_start": info.current_period_start,
        "current_period_end": info.current_period_end,
        "cancel_at_period_end": info.cancel_at_period_end,
        "canceled_at": info.canceled_at,
        "ended_at": info.ended_at,
    }
    if status is SubscriptionStatus.CANCELED and info.ended_at is None:
        values["ended_at"] = info.canceled_at or now
    row = found.row
    if row is None:
        # New here: inserted whole, in one statement. A concurrent delivery may insert it
        # first; then this one waits for it, and updates its row like any other.
        row = insert_returning(
            Subscription,
            {
                **values,
                "stripe_subscription_id": info.id,
                "amount": max(info.amount, 1),
                "cancel_reason": info.cancel_reason[:500],
                "started_at": info.started_at,
                "created_at": info.started_at or now,
                "updated_at": now,
            },
            conflict_on=["stripe_subscription_id"],
        )
        if row is not None:
            return row
        row = _lock_subscription(info).row
        assert row is not None
    if info.amount > 0:
        values["amount"] = info.amount
    if info.cancel_reason:
        values["cancel_reason"] = info.cancel_reason[:500]
    values["started_at"] = info.started_at or row.started_at
    before = emails.Before.of(row)
    assign_changed(row, values)
    db.session.flush()
    emails.subscription_changed(row, before, has_other_support=found.others_counted > 0)
    return row


def _cancel_duplicates(member_id: int) -> None:
    """Keep the member's oldest subscription that counts; cancel each newer one now and refund
    what it charged, saying why in the audit log.

    Two checkouts that got past the one-open-page guard, or one made by hand in the Dashboard,
    would otherwise both renew: a member must never pay twice. The customer row is locked, so
    two deliveries about the two subscriptions come here one after the other, and the second
    finds nothing left to do. Refunds go first: a failure after them is retried whole, and
    their idempotency keys keep the retry from refunding twice.
    """
    counted = db.session.scalars(
        sa.select(Subscription)
        .where(
            Subscription.member_id == member_id,
            Subscription.status.in_(COUNTED_STATUSES),
            Subscription.stripe_subscription_id.is_not(None),
        )
        .order_by(
            sa.func.coalesce(Subscription.started_at, Subscription.created_at),
            Subscription.stripe_subscription_id,
        )
    ).all()
    if len(counted) < 2:
        return
    kept, *newer = counted
    provider = backend()
    recorded = duplicates_cancelled(member_id)
    for duplicate in newer:
        subscription_id = duplicate.stripe_subscription_id or ""
        refunded = 0
        for invoice in provider.list_paid_invoices(subscription_id):
            record_invoice(invoice)  # the ledger row the refund lands on
            if invoice.payment_intent_id and invoice.amount_paid > 0:
                charge = provider.refund_in_full(
                    invoice.payment_intent_id, idempotency_key=f"refund-duplicate-{invoice.id}"
                )
                record_charge(charge)
                refunded += charge.amount_refunded
        sync_subscription(
            provider.cancel_subscription_now(
                subscription_id, idempotency_key=f"cancel-duplicate-{subscription_id}"
            )
        )
        if any(e.details.get("subscription") == subscription_id for e in recorded):
            continue  # cancelled here before, and revived since by a stale read
        record_action(
            DUPLICATE_CANCELLED,
            actor_id=None,
            target_type="member",
            target_id=member_id,
            details={
                "subscription": subscription_id,
                "kept": kept.stripe_subscription_id,
                "refunded": refunded,
                "currency": duplicate.currency,
                "reason": "a second subscription of the member that counted as support",
            },
        )
        log.warning(
            "Member %s had a second live subscription: %s cancelled and refunded, %s kept",
            member_id,
            subscription_id,
            kept.stripe_subscription_id,
        )


def duplicates_cancelled(member_id: int) -> Sequence[AuditEntry]:
    """The member's subscriptions cancelled and refunded as duplicates, newest first."""
    return db.session.scalars(
        sa.select(AuditEntry)
        .where(
            AuditEntry.action == DUPLICATE_CANCELLED,
            AuditEntry.target_type == "member",
            AuditEntry.target_id == str(member_id),
        )
        .order_by(AuditEntry.id.desc())
    ).all()


def failed_payment_subscriptions(now: dt.datetime | None = None) -> Sequence[Subscription]:
    """Past-due subscriptions, oldest period end first: the staff's failed-payments queue."""
    return db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.status.in_((SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)))
        .order_by(Subscription.current_period_end)
    ).all()
