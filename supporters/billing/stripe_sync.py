"""``flask billing sync-stripe``: make Stripe's products and prices match our tiers.

Idempotent: products are found by their metadata and prices by lookup keys, so running it
twice changes nothing. Products without our owner mark are never touched. Stripe prices are
immutable: a changed amount makes a new price (taking over the lookup key) and archives the old.
"""

from __future__ import annotations

import dataclasses
from typing import Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from supporters.billing import stripe_gateway as gateway
from supporters.billing.models import Interval, Tier
from supporters.extensions import db


def owner_key() -> str:
    """Marks what this installation made in a Stripe account (several may share one)."""
    return urlsplit(current_app.config["BASE_URL"]).netloc or "supporters"


@dataclasses.dataclass
class SyncReport:
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    archived: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)


def _lookup_key(owner: str, slug: str, interval: str) -> str:
    return f"supporters:{owner}:{slug}:{interval}"[:200]


def sync_stripe() -> SyncReport:
    """Create or update the products and prices of every tier, plus the custom-amount product.

    :raises gateway.StripeError: Stripe refused or could not be reached (nothing is half-stored:
        the caller commits only after everything succeeded; Stripe-side steps are idempotent).
    """
    owner = owner_key()
    report = SyncReport()
    products = {p.metadata.get("supporters_tier"): p for p in gateway.list_owned_products(owner)}
    tiers = db.session.scalars(sa.select(Tier).order_by(Tier.position, Tier.id)).all()
    keys = [_lookup_key(owner, t.slug, i) for t in tiers for i in ("month", "year")]
    prices = gateway.prices_by_lookup_key(keys)

    for tier in tiers:
        product = products.get(tier.slug)
        if product is None:
            product = gateway.create_product(
                name=tier.name,
                description=tier.description,
                metadata={"supporters_owner": owner, "supporters_tier": tier.slug},
                idempotency_key=f"product-{owner}-{tier.slug}",
            )
            report.created.append(f"product {tier.slug} ({product.id})")
        elif product.name != tier.name or product.active != tier.is_active:
            product = gateway.update_product(
                product.id, name=tier.name, description=tier.description, active=tier.is_active
            )
            report.updated.append(f"product {tier.slug} ({product.id})")
        tier.stripe_product_id = product.id
        for interval in (Interval.MONTH, Interval.YEAR):
            price_id = _sync_price(tier, interval, product.id, prices, owner, report)
            if interval is Interval.MONTH:
                tier.stripe_monthly_price_id = price_id
            else:
                tier.stripe_yearly_price_id = price_id

    if "custom" not in {p.metadata.get("supporters_kind") for p in products.values() if p.active}:
        custom = gateway.create_product(
            name=f"{current_app.config['SITE_NAME']} support",
            description="Support of an amount the reader chooses.",
            metadata={"supporters_owner": owner, "supporters_kind": "custom"},
            idempotency_key=f"product-{owner}-custom",
        )
        report.created.append(f"product custom ({custom.id})")
    db.session.flush()
    return report


def _sync_price(
    tier: Tier,
    interval: Interval,
    product_id: str,
    prices: dict[str, gateway.PriceInfo],
    owner: str,
    report: SyncReport,
) -> str:
    key = _lookup_key(owner, tier.slug, interval.value)
    amount = tier.amount_for(interval)
    current = prices.get(key)
    if current and current.unit_amount == amount and current.currency == tier.currency:
        report.unchanged.append(f"price {key}")
        return current.id
    value: Literal["month", "year"] = "month" if interval is Interval.MONTH else "year"
    created = gateway.create_price(
        product_id=product_id,
        amount=amount,
        currency=tier.currency,
        interval=value,
        lookup_key=key,
        metadata={"supporters_owner": owner, "supporters_tier": tier.slug},
        idempotency_key=f"price-{key}-{amount}-{tier.currency}-{current.id if current else 'new'}",
    )
    report.created.append(f"price {key} {amount} {tier.currency} ({created.id})")
    if current:
        gateway.archive_price(current.id)
        report.archived.append(f"price {key} ({current.id})")
    return created.id
