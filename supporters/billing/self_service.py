"""What a member changes of their own support: amount, tier or interval, cancelling, resuming,
and the provider's page for their card and invoices. Services flush; the caller commits."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters.billing.backend import backend
from supporters.billing.choices import Choice, price_for
from supporters.billing.errors import BillingError
from supporters.billing.models import Customer, Subscription, SubscriptionStatus
from supporters.billing.subscriptions import live_subscription, sync_subscription
from supporters.extensions import db
from supporters.members.models import Member


def _require_live(member: Member) -> Subscription:
    """:raises BillingError: the member has no live subscription at the provider."""
    subscription = live_subscription(member.id)
    if subscription is None or not subscription.stripe_subscription_id:
        raise BillingError(_("You have no active support to change."))
    return subscription


def change_subscription(member: Member, choice: Choice) -> Subscription:
    """Move the member's subscription to another tier, amount or interval now, prorated.

    :raises BillingError: no live subscription, a one-time choice, or nothing would change.
    """
    subscription = _require_live(member)
    if choice.interval is None:
        raise BillingError(_("Choose monthly or yearly to change your support."))
    if (
        subscription.amount == choice.amount
        and subscription.interval is choice.interval
        and subscription.tier_id == (choice.tier.id if choice.tier else None)
    ):
        raise BillingError(_("That is what you already give."))
    provider = backend()
    current = provider.retrieve_subscription(subscription.stripe_subscription_id or "")
    if current.item_id is None:
        raise BillingError(_("This subscription cannot be changed here. Please contact us."))
    price_id, new_price = price_for(choice, provider)
    attempt = f"{choice.tier_key}-{choice.amount}-{choice.interval.value}-{subscription.updated_at.timestamp():.0f}"
    updated = provider.change_subscription_price(
        current.id,
        item_id=current.item_id,
        price_id=price_id,
        new_price=new_price,
        metadata={
            "member_id": str(member.id),
            "tier": choice.tier_key,
            "interval": choice.interval.value,
        },
        idempotency_key=f"change-{subscription.id}-{attempt}",
    )
    return sync_subscription(updated)


# Statuses of a subscription whose current period was never paid for: cancelling ends it now.
UNPAID_PERIOD_STATUSES = (
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.PAUSED,
)


def ends_when_cancelled(subscription: Subscription) -> bool:
    """Whether cancelling ends the subscription now rather than at the end of its period.

    A renewal that failed opened a period nobody paid for. Ending it at that period's end
    would keep Stripe retrying the card for weeks (a whole year on a yearly plan) to charge
    for a period the patron has just declined; ending it now stops the retries, since Stripe
    stops collecting open invoices when a subscription is cancelled.
    """
    return subscription.status in UNPAID_PERIOD_STATUSES


def cancel_subscription(member: Member, *, reason: str = "") -> Subscription:
    """Stop the member's support: at the end of the paid period (benefits continue until
    then), or now when its renewal was not paid (see :func:`ends_when_cancelled`).

    :raises BillingError: the member has no live subscription.
    """
    subscription = _require_live(member)
    subscription_id = subscription.stripe_subscription_id or ""
    if ends_when_cancelled(subscription):
        ended = backend().cancel_subscription_now(subscription_id, reason=reason.strip())
        return sync_subscription(ended)
    if subscription.cancel_at_period_end:
        return subscription
    updated = backend().set_cancel_at_period_end(
        subscription_id, cancel=True, reason=reason.strip()
    )
    return sync_subscription(updated)


def resume_subscription(member: Member) -> Subscription:
    """Withdraw a scheduled cancellation before the period ends."""
    subscription = _require_live(member)
    if not subscription.cancel_at_period_end:
        return subscription
    updated = backend().set_cancel_at_period_end(
        subscription.stripe_subscription_id or "", cancel=False
    )
    return sync_subscription(updated)


def portal_url(member: Member, *, return_url: str) -> str:
    """Where the member updates their card and sees invoices (Stripe's Billing Portal).

    :raises BillingError: the member has never paid through Stripe.
    """
    customer_id = db.session.scalar(
        sa.select(Customer.stripe_customer_id).where(Customer.member_id == member.id)
    )
    if customer_id is None:
        raise BillingError(_("You have no payment details with us yet."))
    return backend().create_portal_session(customer_id=customer_id, return_url=return_url)
