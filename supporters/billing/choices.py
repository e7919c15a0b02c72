"""What a reader may choose on the support page, checked, and the price that sells it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from supporters.billing.errors import BillingError
from supporters.billing.models import Interval, Tier
from supporters.billing.provider import Backend, NewPrice
from supporters.extensions import db

CUSTOM = "custom"


@dataclasses.dataclass(frozen=True)
class Choice:
    """What a reader picked on the support page: a tier or an amount, and how often."""

    tier: Tier | None
    amount: int
    currency: str
    interval: Interval | None  # None: a one-time gift

    @property
    def is_recurring(self) -> bool:
        return self.interval is not None

    @property
    def tier_key(self) -> str:
        return self.tier.slug if self.tier else CUSTOM


def active_tiers() -> Sequence[Tier]:
    """The tiers offered on the support page, in their order."""
    return db.session.scalars(
        sa.select(Tier).where(Tier.is_active).order_by(Tier.position, Tier.monthly_amount)
    ).all()


def minimum_amount() -> int:
    """The smallest amount a reader may give, in minor units of the site's currency."""
    return int(current_app.config["MINIMUM_AMOUNT"])


def make_choice(*, tier_slug: str, amount: int | None, interval: str) -> Choice:
    """Validate a reader's pick from the support page.

    :raises BillingError: an unknown or retired tier, a missing or too small amount.
    """
    currency = current_app.config["CURRENCY"]
    period = None if interval == "once" else Interval(interval)
    if tier_slug and tier_slug != CUSTOM:
        tier = db.session.scalar(sa.select(Tier).where(Tier.slug == tier_slug, Tier.is_active))
        if tier is None:
            raise BillingError(_("This tier is not offered any more. Please choose another."))
        if period is None:
            raise BillingError(
                _("Tiers renew monthly or yearly; for a one-time gift, enter an amount.")
            )
        return Choice(
            tier=tier, amount=tier.amount_for(period), currency=tier.currency, interval=period
        )
    if amount is None:
        raise BillingError(_("Enter an amount, or choose one of the tiers."))
    if amount < minimum_amount():
        from supporters.i18n import money

        raise BillingError(
            _(
                "The smallest amount we can accept is %(amount)s.",
                amount=money(minimum_amount(), currency),
            )
        )
    if amount > int(current_app.config["MAXIMUM_AMOUNT"]):
        raise BillingError(_("For a gift this large, please write to us."))
    return Choice(tier=None, amount=amount, currency=currency, interval=period)


def price_for(choice: Choice, provider: Backend) -> tuple[str | None, NewPrice | None]:
    """What sells the choice: its tier's price at the provider, else an inline price of the
    tier's product or of the custom-amount one.

    :raises BillingError: payments are not set up (no product to sell it under).
    """
    if choice.tier is not None and choice.interval is not None:
        price_id = (
            choice.tier.stripe_monthly_price_id
            if choice.interval is Interval.MONTH
            else choice.tier.stripe_yearly_price_id
        )
        if price_id:
            return price_id, None
        product_id = choice.tier.stripe_product_id
    else:
        product_id = None
    product_id = product_id or provider.custom_product_id()
    if not product_id:
        raise BillingError(_("Payments are not set up yet. Please try again later."))
    interval = choice.interval.value if choice.interval else None
    return None, NewPrice(
        amount=choice.amount,
        currency=choice.currency,
        interval=interval,  # type: ignore[arg-type]
        product_id=product_id,
    )
