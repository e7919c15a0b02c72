"""Customers, Checkout Sessions and the Billing Portal."""

from __future__ import annotations

from typing import Any, cast

from supporters.billing.provider import CheckoutInfo, CheckoutRequest
from supporters.billing.stripe_gateway import convert
from supporters.billing.stripe_gateway.client import (
    InvalidRequestError,
    client,
    fetch,
    options,
    path,
)


def create_customer(*, email: str, name: str, member_id: int) -> str:
    """Create the member's Stripe customer; the idempotency key makes a retry return the same one.

    :raises StripeError: Stripe refused or could not be reached.
    """
    customer = client().v1.customers.create(
        params={"email": email, "name": name or email, "metadata": {"member_id": str(member_id)}},
        options=options(f"customer-member-{member_id}"),
    )
    return customer.id


def find_customers(email: str) -> list[str]:
    """Ids of Stripe customers with this email (reconciliation looks for duplicates)."""
    found = client().v1.customers.list(params={"email": email, "limit": 100})
    return [c.id for c in found.data]


def create_checkout_session(request: CheckoutRequest) -> CheckoutInfo:
    """Start a Stripe Checkout for an existing customer, with a price id or an inline price.

    :raises StripeError: Stripe refused or could not be reached.
    """
    line_item: dict[str, Any] = {"quantity": 1}
    new_price = request.new_price
    if request.price_id:
        line_item["price"] = request.price_id
    elif new_price is not None:
        price_data: dict[str, Any] = {
            "currency": new_price.currency.lower(),
            "unit_amount": new_price.amount,
            "product": new_price.product_id,
        }
        if new_price.interval:
            price_data["recurring"] = {"interval": new_price.interval}
        line_item["price_data"] = price_data
    else:
        raise ValueError("a checkout needs a price id or a new price")
    metadata = dict(request.metadata)
    params: dict[str, Any] = {
        "mode": request.mode,
        "customer": request.customer_id,
        "line_items": [line_item],
        "client_reference_id": request.client_reference_id,
        "metadata": metadata,
        "success_url": request.success_url,
        "cancel_url": request.cancel_url,
    }
    if request.mode == "subscription":
        params["subscription_data"] = {"metadata": dict(metadata)}
        if request.first_charge_at is not None:
            # A trial until then: the card is saved now and first charged at its end.
            params["subscription_data"]["trial_end"] = int(request.first_charge_at.timestamp())
    else:
        params["payment_intent_data"] = {"metadata": dict(metadata)}
    session = client().v1.checkout.sessions.create(
        params=cast(Any, params), options=options(request.idempotency_key)
    )
    return convert.to_checkout(session)


def retrieve_checkout_session(session_id: str) -> CheckoutInfo:
    """A session with its subscription and latest invoice, or its payment's charge, at once.

    :raises StripeError: unknown session or Stripe unreachable.
    """
    session = fetch(
        path("checkout", "sessions", session_id),
        expand=["subscription.latest_invoice.payments", "payment_intent.latest_charge"],
    )
    return convert.to_checkout(session)


def expire_checkout_session(session_id: str) -> CheckoutInfo:
    """Close a Checkout Session so that it can no longer be paid; the session as it is now.

    One that was already completed (paid) or had expired is returned as it is, with its
    subscription and latest invoice, as :func:`retrieve_checkout_session` gives them.

    :raises StripeError: Stripe refused for another reason, or could not be reached.
    """
    try:
        session = client().v1.checkout.sessions.expire(session_id)
    except InvalidRequestError:
        # Stripe expires open sessions only; the error does not say what became of this one.
        current = retrieve_checkout_session(session_id)
        if current.status == "open":
            raise
        return current
    return convert.to_checkout(session)


def create_portal_session(*, customer_id: str, return_url: str) -> str:
    """A Billing Portal link where the member updates their card and sees invoices."""
    session = client().v1.billing_portal.sessions.create(
        params={"customer": customer_id, "return_url": return_url}
    )
    return session.url
