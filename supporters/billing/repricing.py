"""Patrons who pay an older price of their tier, and moving them to its current one.

A tier's new price is for new patrons: the subscriptions that pay an older one keep it (Stripe
keeps billing an archived price) until staff choose to move them, with
``flask billing move-to-current-prices``. Moving changes the price from the next renewal; the
period already paid for is not prorated. Services flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters.billing import stripe_gateway as gateway
from supporters.billing.errors import BillingError
from supporters.billing.membership import LIVE_STATUSES
from supporters.billing.models import Interval, Subscription, SubscriptionStatus, Tier
from supporters.billing.subscriptions import sync_subscription
from supporters.extensions import db

# Live subscriptions that have started paying; an incomplete one is a checkout still under way.
PAYING_STATUSES = tuple(s for s in LIVE_STATUSES if s is not SubscriptionStatus.INCOMPLETE)


def _on_older_price() -> sa.ColumnElement[bool]:
    """A subscription pays other than its tier's current price for its interval."""
    current = sa.case(
        (Subscription.interval == Interval.MONTH, Tier.monthly_amount), else_=Tier.yearly_amount
    )
    return sa.and_(
        Subscription.status.in_(PAYING_STATUSES),
        sa.or_(Subscription.amount != current, Subscription.currency != Tier.currency),
    )


def older_price_counts(tier_id: int | None = None) -> dict[int, int]:
    """Per tier (or for one), how many live subscriptions pay other than its current price."""
    query = (
        sa.select(Tier.id, sa.func.count(Subscription.id))
        .join(Subscription, Subscription.tier_id == Tier.id)
        .where(_on_older_price())
        .group_by(Tier.id)
    )
    if tier_id is not None:
        query = query.where(Tier.id == tier_id)
    return {found: int(count) for found, count in db.session.execute(query)}


def on_older_prices(tier_slug: str | None = None) -> Sequence[Subscription]:
    """The live subscriptions that pay an older price of their tier (of one tier), oldest first."""
    query = (
        sa.select(Subscription)
        .join(Tier, Subscription.tier_id == Tier.id)
        .where(_on_older_price(), Subscription.stripe_subscription_id.is_not(None))
        .order_by(Subscription.id)
    )
    if tier_slug is not None:
        query = query.where(Tier.slug == tier_slug)
    return db.session.scalars(query).all()


def move_to_current_price(subscription: Subscription) -> Subscription:
    """Move a subscription to its tier's current price, from its next renewal. Idempotent.

    :raises BillingError: the tier has no Stripe price yet, or the subscription has no item.
    :raises gateway.StripeError: Stripe refused or could not be reached.
    """
    tier = subscription.tier
    assert tier is not None and subscription.stripe_subscription_id is not None
    price_id = (
        tier.stripe_monthly_price_id
        if subscription.interval is Interval.MONTH
        else tier.stripe_yearly_price_id
    )
    if price_id is None:
        raise BillingError(_("The tier has no Stripe price yet: run billing sync-stripe."))
    current = gateway.retrieve_subscription(subscription.stripe_subscription_id)
    if current.price_id == price_id:
        return sync_subscription(current)
    if current.item_id is None:
        raise BillingError(_("This subscription has no item to move."))
    moved = gateway.reprice_subscription(
        current.id,
        item_id=current.item_id,
        price_id=price_id,
        idempotency_key=f"reprice-{current.id}-{price_id}",
    )
    return sync_subscription(moved)
