"""The payment provider the services talk to: Stripe, or the demo checkout when no key is set.

Both answer the same calls with the same dataclasses, so joining, renewing and cancelling go
through the same services and state changes whichever is in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

from flask import current_app

from supporters.billing import stripe_gateway as gateway
from supporters.billing.stripe_gateway import (
    ChargeInfo,
    CheckoutInfo,
    InvoiceInfo,
    NewPrice,
    SubscriptionInfo,
)


class Backend(Protocol):
    """The calls billing services make of a payment provider."""

    name: str

    def create_customer(self, *, email: str, name: str, member_id: int) -> str: ...

    def custom_product_id(self) -> str | None: ...

    def create_checkout_session(
        self,
        *,
        customer_id: str,
        mode: Literal["subscription", "payment"],
        price_id: str | None,
        new_price: NewPrice | None,
        metadata: Mapping[str, str],
        client_reference_id: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutInfo: ...

    def retrieve_checkout_session(self, session_id: str) -> CheckoutInfo: ...

    def expire_checkout_session(self, session_id: str) -> CheckoutInfo: ...

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionInfo: ...

    def retrieve_invoice(self, invoice_id: str) -> InvoiceInfo: ...

    def change_subscription_price(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str | None,
        new_price: NewPrice | None,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> SubscriptionInfo: ...

    def set_cancel_at_period_end(
        self, subscription_id: str, *, cancel: bool, reason: str = ""
    ) -> SubscriptionInfo: ...

    def cancel_subscription_now(
        self, subscription_id: str, *, reason: str = "", idempotency_key: str | None = None
    ) -> SubscriptionInfo: ...

    def list_paid_invoices(self, subscription_id: str) -> list[InvoiceInfo]: ...

    def refund_in_full(self, payment_intent_id: str, *, idempotency_key: str) -> ChargeInfo: ...

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str: ...


class StripeBackend:
    """Stripe itself, through the gateway."""

    name = "stripe"

    create_customer = staticmethod(gateway.create_customer)
    create_checkout_session = staticmethod(gateway.create_checkout_session)
    retrieve_checkout_session = staticmethod(gateway.retrieve_checkout_session)
    expire_checkout_session = staticmethod(gateway.expire_checkout_session)
    retrieve_subscription = staticmethod(gateway.retrieve_subscription)
    retrieve_invoice = staticmethod(gateway.retrieve_invoice)
    change_subscription_price = staticmethod(gateway.change_subscription_price)
    set_cancel_at_period_end = staticmethod(gateway.set_cancel_at_period_end)
    cancel_subscription_now = staticmethod(gateway.cancel_subscription_now)
    list_paid_invoices = staticmethod(gateway.list_paid_invoices)
    refund_in_full = staticmethod(gateway.refund_in_full)
    create_portal_session = staticmethod(gateway.create_portal_session)

    def custom_product_id(self) -> str | None:
        """The product custom amounts are sold under (made by ``billing sync-stripe``)."""
        cached = current_app.extensions.get("stripe_custom_product")
        if cached:
            return str(cached)
        from supporters.billing.stripe_sync import owner_key

        for product in gateway.list_owned_products(owner_key()):
            if product.active and product.metadata.get("supporters_kind") == "custom":
                current_app.extensions["stripe_custom_product"] = product.id
                return product.id
        return None


def backend() -> Backend:
    """Stripe when a secret key is configured, else the local demo checkout."""
    if gateway.is_configured():
        return StripeBackend()
    from supporters.billing.demo_checkout import DemoBackend

    return DemoBackend()
