"""Make Stripe's products and prices match our tiers: one tier as an admin saves it, or all of
them with ``flask billing sync-stripe``. Both go through :func:`sync_tier`.

Idempotent: products are found by the id we stored (else by their metadata) and prices by
lookup keys, so running it twice changes nothing. Products without our owner mark are never
touched. Stripe prices are immutable: a changed amount makes a new price (taking over the
lookup key). The prices it replaces are archived only after the tier row points at the new
ones and is committed (:func:`archive_prices`): until then the tier keeps selling a price that
is still active, whatever fails in between. Archiving a price never changes the subscriptions
that pay it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from supporters.billing import stripe_gateway as gateway
from supporters.billing.models import Interval, Tier
from supporters.billing.provider import PriceInfo, ProductInfo
from supporters.extensions import db

log = logging.getLogger(__name__)


def owner_key() -> str:
    """Marks what this installation made in a Stripe account (several may share one)."""
    return urlsplit(current_app.config["BASE_URL"]).netloc or "supporters"


def is_configured() -> bool:
    """Whether tiers are sold through Stripe (else through the demo checkout)."""
    return gateway.is_configured()


@dataclasses.dataclass
class SyncReport:
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    archived: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    #: Prices no tier sells any more, to archive once the tiers are committed.
    replaced: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class TierPrices:
    """What Stripe sells a tier as: its product and current prices, and the product's other
    active prices, which the tier no longer sells (to archive after the commit)."""

    product_id: str
    monthly_price_id: str
    yearly_price_id: str
    replaced: tuple[str, ...] = ()

    def ids(self) -> dict[str, str]:
        """The tier's columns holding these ids, with their values."""
        return {
            "stripe_product_id": self.product_id,
            "stripe_monthly_price_id": self.monthly_price_id,
            "stripe_yearly_price_id": self.yearly_price_id,
        }


def _lookup_key(owner: str, slug: str, interval: str) -> str:
    return f"supporters:{owner}:{slug}:{interval}"[:200]


def sync_tier(
    tier: Tier,
    *,
    owner: str | None = None,
    owned: Sequence[ProductInfo] | None = None,
    prices: Mapping[str, PriceInfo] | None = None,
    report: SyncReport | None = None,
) -> TierPrices:
    """Make the tier's product and prices in Stripe say what the tier says now (saved or not).

    Writes nothing here: the caller stores the ids, commits, then archives ``replaced``.
    ``owned`` (our products) and ``prices`` (by lookup key) are what the caller fetched for
    many tiers at once; without them, this tier's are asked for.

    :raises gateway.StripeError: Stripe refused or could not be reached. What was made before
        the failure is found again by the next attempt (lookup keys, idempotency keys).
    """
    owner = owner or owner_key()
    report = report if report is not None else SyncReport()
    product = _sync_product(tier, owner, owned, report)
    keys = {interval: _lookup_key(owner, tier.slug, interval.value) for interval in Interval}
    if prices is None:
        prices = gateway.prices_by_lookup_key(list(keys.values()))
    selling = {
        interval: _sync_price(tier, interval, product.id, keys[interval], prices, owner, report)
        for interval in Interval
    }
    replaced = tuple(
        price.id
        for price in gateway.list_active_prices(product.id)
        if price.id not in selling.values()
    )
    return TierPrices(product.id, selling[Interval.MONTH], selling[Interval.YEAR], replaced)


def _find_product(
    tier: Tier, owner: str, owned: Sequence[ProductInfo] | None
) -> ProductInfo | None:
    """The tier's product: the one we stored (followed through renamed slugs), else ours that
    names the slug (made by an attempt whose tier was never committed)."""
    if owned is None:
        if tier.stripe_product_id:
            stored = gateway.retrieve_product(tier.stripe_product_id)
            if stored.metadata.get("supporters_owner") == owner:
                return stored
        owned = gateway.list_owned_products(owner)
    by_id = next((p for p in owned if p.id == tier.stripe_product_id), None)
    if by_id is not None:
        return by_id
    return next((p for p in owned if p.metadata.get("supporters_tier") == tier.slug), None)


def _sync_product(
    tier: Tier, owner: str, owned: Sequence[ProductInfo] | None, report: SyncReport
) -> ProductInfo:
    product = _find_product(tier, owner, owned)
    if product is None:
        product = gateway.create_product(
            name=tier.name,
            description=tier.description,
            metadata={"supporters_owner": owner, "supporters_tier": tier.slug},
            idempotency_key=f"product-{owner}-{tier.slug}",
        )
        report.created.append(f"product {tier.slug} ({product.id})")
    elif (
        product.name != tier.name
        or product.description != tier.description
        or product.active != tier.is_active
        or product.metadata.get("supporters_tier") != tier.slug
    ):
        product = gateway.update_product(
            product.id,
            name=tier.name,
            description=tier.description,
            active=tier.is_active,
            metadata={"supporters_tier": tier.slug},
        )
        report.updated.append(f"product {tier.slug} ({product.id})")
    return product


def _sync_price(
    tier: Tier,
    interval: Interval,
    product_id: str,
    key: str,
    prices: Mapping[str, PriceInfo],
    owner: str,
    report: SyncReport,
) -> str:
    amount = tier.amount_for(interval)
    current = prices.get(key)
    if (
        current is not None
        and current.product_id == product_id
        and current.unit_amount == amount
        and current.currency == tier.currency
    ):
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
    return created.id


def archive_prices(price_ids: Iterable[str], report: SyncReport | None = None) -> None:
    """Archive prices no tier sells any more; call it after the commit that replaced them.

    :raises gateway.StripeError: Stripe refused or could not be reached; the prices not yet
        archived stay active and unused, and the next sync of their tier archives them.
    """
    for price_id in price_ids:
        gateway.archive_price(price_id)
        if report is not None:
            report.archived.append(f"price {price_id}")


def sync_stripe() -> SyncReport:
    """Sync every tier, plus the custom-amount product; flushes the tiers' Stripe ids.

    The caller commits, then archives ``report.replaced`` with :func:`archive_prices`.

    :raises gateway.StripeError: Stripe refused or could not be reached (nothing is half-stored:
        the caller commits only after everything succeeded; Stripe-side steps are idempotent).
    """
    owner = owner_key()
    report = SyncReport()
    owned = gateway.list_owned_products(owner)
    tiers = db.session.scalars(sa.select(Tier).order_by(Tier.position, Tier.id)).all()
    keys = [_lookup_key(owner, t.slug, i.value) for t in tiers for i in Interval]
    prices = gateway.prices_by_lookup_key(keys)

    for tier in tiers:
        synced = sync_tier(tier, owner=owner, owned=owned, prices=prices, report=report)
        for name, value in synced.ids().items():
            setattr(tier, name, value)
        report.replaced.extend(synced.replaced)

    if "custom" not in {p.metadata.get("supporters_kind") for p in owned if p.active}:
        custom = gateway.create_product(
            name=f"{current_app.config['SITE_NAME']} support",
            description="Support of an amount the reader chooses.",
            metadata={"supporters_owner": owner, "supporters_kind": "custom"},
            idempotency_key=f"product-{owner}-custom",
        )
        report.created.append(f"product custom ({custom.id})")
    db.session.flush()
    return report
