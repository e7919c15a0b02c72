"""Subscriptions: read, list, and changed by the member or by staff."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from supporters.billing.provider import NewPrice, SubscriptionInfo
from supporters.billing.stripe_gateway import convert
from supporters.billing.stripe_gateway.client import (
    InvalidRequestError,
    client,
    fetch,
    options,
    path,
)


def retrieve_subscription(subscription_id: str) -> SubscriptionInfo:
    """:raises StripeError: unknown subscription or Stripe unreachable."""
    return convert.to_subscription(fetch(path("subscriptions", subscription_id)))


def list_subscriptions(customer_id: str) -> list[SubscriptionInfo]:
    """Every subscription of a customer, whatever its status (for reconciliation)."""
    found = client().v1.subscriptions.list(
        params={"customer": customer_id, "status": "all", "limit": 100}
    )
    return [convert.to_subscription(s) for s in found.auto_paging_iter()]


def change_subscription_price(
    subscription_id: str,
    *,
    item_id: str,
    price_id: str | None,
    new_price: NewPrice | None,
    metadata: Mapping[str, str],
    idempotency_key: str,
) -> SubscriptionInfo:
    """Move a subscription to another price now, prorating the difference.

    :raises StripeError: Stripe refused or could not be reached.
    """
    item: dict[str, Any] = {"id": item_id}
    if price_id:
        item["price"] = price_id
    elif new_price is not None:
        item["price_data"] = {
            "currency": new_price.currency.lower(),
            "unit_amount": new_price.amount,
            "product": new_price.product_id,
            "recurring": {"interval": new_price.interval or "month"},
        }
    updated = client().v1.subscriptions.update(
        subscription_id,
        params=cast(
            Any,
            {
                "items": [item],
                "proration_behavior": "create_prorations",
                "cancel_at_period_end": False,
                "metadata": dict(metadata),
            },
        ),
        options=options(idempotency_key),
    )
    return convert.to_subscription(updated)


def set_cancel_at_period_end(
    subscription_id: str, *, cancel: bool, reason: str = ""
) -> SubscriptionInfo:
    """Schedule (or withdraw) the end of a subscription at the end of the paid period."""
    params: dict[str, Any] = {"cancel_at_period_end": cancel}
    if cancel:
        params["cancellation_details"] = {"comment": reason[:500]}
    updated = client().v1.subscriptions.update(subscription_id, params=cast(Any, params))
    return convert.to_subscription(updated)


def cancel_subscription_now(
    subscription_id: str, *, reason: str = "", idempotency_key: str | None = None
) -> SubscriptionInfo:
    """End a subscription at once; one that had ended already is returned as it is.

    Stripe then stops collecting the customer's open invoices. Nothing is refunded (see
    :func:`refund_in_full`).

    :raises StripeError: Stripe refused for another reason, or could not be reached.
    """
    params: dict[str, Any] = {"cancellation_details": {"comment": reason[:500]}} if reason else {}
    try:
        cancelled = client().v1.subscriptions.cancel(
            subscription_id, params=cast(Any, params), options=options(idempotency_key)
        )
    except InvalidRequestError:
        current = retrieve_subscription(subscription_id)
        if current.status not in ("canceled", "incomplete_expired"):
            raise
        return current
    return convert.to_subscription(cancelled)


def reprice_subscription(
    subscription_id: str, *, item_id: str, price_id: str, idempotency_key: str
) -> SubscriptionInfo:
    """Move a subscription's item to another price of the same interval from its next renewal.

    Nothing is prorated: the period already paid for keeps its price. Cancellation settings
    and metadata stay as they are.

    :raises StripeError: Stripe refused or could not be reached.
    """
    updated = client().v1.subscriptions.update(
        subscription_id,
        params={"items": [{"id": item_id, "price": price_id}], "proration_behavior": "none"},
        options=options(idempotency_key),
    )
    return convert.to_subscription(updated)
