"""The payment provider the services talk to: Stripe, or the demo checkout when no key is set.

Both answer the calls of :class:`supporters.billing.provider.Backend` with the same
dataclasses, so joining, renewing and cancelling go through the same services and state
changes whichever is in use.
"""

from __future__ import annotations

from flask import current_app

from supporters.billing import stripe_gateway as gateway
from supporters.billing.demo_checkout import DemoBackend
from supporters.billing.provider import Backend
from supporters.billing.stripe_sync import owner_key


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
        for product in gateway.list_owned_products(owner_key()):
            if product.active and product.metadata.get("supporters_kind") == "custom":
                current_app.extensions["stripe_custom_product"] = product.id
                return product.id
        return None


def backend() -> Backend:
    """Stripe when a secret key is configured, else the local demo checkout."""
    if gateway.is_configured():
        return StripeBackend()
    return DemoBackend()
