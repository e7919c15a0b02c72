"""Products and prices (``billing sync-stripe``): only those this installation made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from supporters.billing.provider import PriceInfo, ProductInfo
from supporters.billing.stripe_gateway import convert
from supporters.billing.stripe_gateway.client import client, fetch, options, path


def list_owned_products(owner: str) -> list[ProductInfo]:
    """Products this installation made (metadata ``supporters_owner``); others are never touched."""
    found = client().v1.products.list(params={"limit": 100})
    products = [convert.to_product(p) for p in found.auto_paging_iter()]
    return [p for p in products if p.metadata.get("supporters_owner") == owner]


def create_product(
    *, name: str, description: str, metadata: Mapping[str, str], idempotency_key: str
) -> ProductInfo:
    """Create a product of this installation; the idempotency key makes a retry find it."""
    params: dict[str, Any] = {"name": name, "metadata": dict(metadata)}
    if description:
        params["description"] = description
    return convert.to_product(
        client().v1.products.create(params=cast(Any, params), options=options(idempotency_key))
    )


def retrieve_product(product_id: str) -> ProductInfo:
    """:raises StripeError: unknown product or Stripe unreachable."""
    return convert.to_product(fetch(path("products", product_id)))


def update_product(
    product_id: str,
    *,
    name: str,
    description: str,
    active: bool,
    metadata: Mapping[str, str] | None = None,
) -> ProductInfo:
    """Rename, describe, retire or re-offer a product; ``metadata`` keys are merged in."""
    params: dict[str, Any] = {"name": name, "description": description or "", "active": active}
    if metadata:
        params["metadata"] = dict(metadata)
    return convert.to_product(client().v1.products.update(product_id, params=cast(Any, params)))


#: Stripe answers a price list for at most this many lookup keys at once.
LOOKUP_KEYS_PER_REQUEST = 10


def prices_by_lookup_key(lookup_keys: Sequence[str]) -> dict[str, PriceInfo]:
    """Active prices found by their lookup keys (asked for ten keys at a time)."""
    found: dict[str, PriceInfo] = {}
    for start in range(0, len(lookup_keys), LOOKUP_KEYS_PER_REQUEST):
        page = client().v1.prices.list(
            params={
                "lookup_keys": list(lookup_keys[start : start + LOOKUP_KEYS_PER_REQUEST]),
                "active": True,
                "limit": 100,
            }
        )
        found.update({p.lookup_key: convert.to_price(p) for p in page.data if p.lookup_key})
    return found


def list_active_prices(product_id: str) -> list[PriceInfo]:
    """Every active price of a product."""
    found = client().v1.prices.list(params={"product": product_id, "active": True, "limit": 100})
    return [convert.to_price(p) for p in found.auto_paging_iter()]


def create_price(
    *,
    product_id: str,
    amount: int,
    currency: str,
    interval: Literal["month", "year"],
    lookup_key: str,
    metadata: Mapping[str, str],
    idempotency_key: str,
) -> PriceInfo:
    """A recurring price; ``transfer_lookup_key`` moves the key from the price it replaces."""
    price = client().v1.prices.create(
        params={
            "product": product_id,
            "unit_amount": amount,
            "currency": currency.lower(),
            "recurring": {"interval": interval},
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,
            "metadata": dict(metadata),
        },
        options=options(idempotency_key),
    )
    return convert.to_price(price)


def archive_price(price_id: str) -> None:
    """Prices cannot change or be deleted in Stripe: an outdated one is made inactive."""
    client().v1.prices.update(price_id, params={"active": False})
