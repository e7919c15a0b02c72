"""The one package that talks to Stripe.

Everything else calls these typed functions and gets plain dataclasses back
(``billing.provider``), never SDK objects: the services neither import ``stripe`` nor care
whether a subscription came from Stripe or from the demo checkout. The API version is pinned
here (``client.API_VERSION``), so an SDK upgrade cannot change the shapes we read without a
deliberate change to this package.

Inside: ``client`` builds the one ``StripeClient`` and its transport, ``convert`` turns Stripe's
objects into dataclasses, and the calls are grouped by what they are about: ``checkout``,
``subscriptions``, ``payments``, ``products`` and webhook ``events``. Callers import this
package alone (``from supporters.billing import stripe_gateway as gateway``).
"""

from supporters.billing.stripe_gateway.checkout import (
    create_checkout_session,
    create_customer,
    create_portal_session,
    expire_checkout_session,
    find_customers,
    retrieve_checkout_session,
)
from supporters.billing.stripe_gateway.client import (
    API_VERSION,
    CardError,
    InvalidRequestError,
    NotConfigured,
    StripeError,
    client,
    is_configured,
)
from supporters.billing.stripe_gateway.events import (
    EventInfo,
    SignatureError,
    verify_event,
)
from supporters.billing.stripe_gateway.payments import (
    checkout_session_paid_by,
    invoice_paid_by,
    list_paid_invoices,
    refund_in_full,
    retrieve_charge,
    retrieve_dispute,
    retrieve_invoice,
)
from supporters.billing.stripe_gateway.products import (
    archive_price,
    create_price,
    create_product,
    list_active_prices,
    list_owned_products,
    prices_by_lookup_key,
    retrieve_product,
    update_product,
)
from supporters.billing.stripe_gateway.subscriptions import (
    cancel_subscription_now,
    change_subscription_price,
    list_subscriptions,
    reprice_subscription,
    retrieve_subscription,
    set_cancel_at_period_end,
)

__all__ = [
    "API_VERSION",
    "CardError",
    "EventInfo",
    "InvalidRequestError",
    "NotConfigured",
    "SignatureError",
    "StripeError",
    "archive_price",
    "cancel_subscription_now",
    "change_subscription_price",
    "checkout_session_paid_by",
    "client",
    "create_checkout_session",
    "create_customer",
    "create_portal_session",
    "create_price",
    "create_product",
    "expire_checkout_session",
    "find_customers",
    "invoice_paid_by",
    "is_configured",
    "list_active_prices",
    "list_owned_products",
    "list_paid_invoices",
    "list_subscriptions",
    "prices_by_lookup_key",
    "refund_in_full",
    "reprice_subscription",
    "retrieve_charge",
    "retrieve_checkout_session",
    "retrieve_dispute",
    "retrieve_invoice",
    "retrieve_product",
    "retrieve_subscription",
    "set_cancel_at_period_end",
    "update_product",
    "verify_event",
]
