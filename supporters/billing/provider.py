"""What billing asks of a payment provider, and what it gets back: plain data, whoever answers.

The services call a :class:`Backend` (see ``billing.backend``: Stripe through
``stripe_gateway``, or the demo checkout when no key is set) and read these dataclasses, never
a provider's own objects. Both providers build them, so the demo checkout and the tests need
nothing from Stripe's module to describe a subscription, an invoice or a checkout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True)
class SubscriptionInfo:
    """What we keep of a subscription at the provider (in Stripe's terms, as both speak)."""

    id: str
    customer_id: str
    status: str
    item_id: str | None
    price_id: str | None
    product_id: str | None
    amount: int
    currency: str
    interval: str
    current_period_start: dt.datetime | None
    current_period_end: dt.datetime | None
    cancel_at_period_end: bool
    cancel_reason: str
    started_at: dt.datetime | None
    canceled_at: dt.datetime | None
    ended_at: dt.datetime | None
    latest_invoice_id: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InvoiceInfo:
    """What we keep of an invoice: one row in our payments ledger."""

    id: str
    customer_id: str
    subscription_id: str | None
    status: str  # draft, open, paid, uncollectible, void
    amount_due: int
    amount_paid: int
    currency: str
    created_at: dt.datetime
    paid_at: dt.datetime | None
    receipt_url: str
    payment_intent_id: str | None
    charge_id: str | None
    attempt_count: int
    billing_reason: str
    # The subscription as it is now, when the provider sent it expanded with the invoice.
    subscription: SubscriptionInfo | None = None


@dataclass(frozen=True)
class ChargeInfo:
    """A charge, read when it is refunded or disputed."""

    id: str
    customer_id: str | None
    payment_intent_id: str | None
    amount: int
    amount_refunded: int
    currency: str
    status: str
    disputed: bool
    receipt_url: str
    created_at: dt.datetime
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DisputeInfo:
    """A dispute of a charge, and what it holds back from the newsroom's balance now."""

    id: str
    charge_id: str
    payment_intent_id: str | None
    amount: int
    currency: str
    reason: str
    status: str  # the provider's exact string (see billing.models.DisputeStatus)
    evidence_due_at: dt.datetime | None  # None: the bank takes no response
    created_at: dt.datetime
    #: Withdrawals less reinstatements, in the dispute's currency; the provider's fee left out.
    withdrawn_amount: int


@dataclass(frozen=True)
class CheckoutInfo:
    """A Checkout Session: where to send the reader, and what came of it."""

    id: str
    url: str | None
    mode: str
    status: str  # open, complete, expired
    payment_status: str  # paid, unpaid, no_payment_required
    customer_id: str | None
    subscription_id: str | None
    payment_intent_id: str | None
    amount_total: int | None
    currency: str | None
    client_reference_id: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    expires_at: dt.datetime | None = None  # None: never (the demo checkout)
    # Expanded with the session: its subscription and that subscription's latest invoice.
    subscription: SubscriptionInfo | None = None
    invoice: InvoiceInfo | None = None
    # A payment's charge (its payment intent's latest), and the receipt the provider keeps.
    charge_id: str | None = None
    receipt_url: str = ""


@dataclass(frozen=True)
class PriceInfo:
    """A price of a product (``billing sync-stripe`` keeps one per tier and interval)."""

    id: str
    product_id: str
    unit_amount: int
    currency: str
    interval: str | None
    lookup_key: str | None
    active: bool
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductInfo:
    """A product: a tier's, or the one custom amounts are sold under."""

    id: str
    name: str
    active: bool
    metadata: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class NewPrice:
    """An inline price for a custom amount (Checkout's ``price_data``)."""

    amount: int
    currency: str
    interval: Literal["month", "year"] | None
    product_id: str


@dataclass(frozen=True)
class CheckoutRequest:
    """A checkout to open for an existing customer, with a price id or an inline price."""

    customer_id: str
    mode: Literal["subscription", "payment"]
    price_id: str | None
    new_price: NewPrice | None
    metadata: Mapping[str, str]
    client_reference_id: str
    success_url: str
    cancel_url: str
    #: The same key gives back the same session (a double submit).
    idempotency_key: str
    #: A subscription's first charge, deferred to this moment (a trial until then); None: now.
    #: Checkout wants it at least 48 hours ahead (see ``checkout.first_charge_date``).
    first_charge_at: dt.datetime | None = None


class Backend(Protocol):
    """The calls billing services make of a payment provider."""

    name: str

    def create_customer(self, *, email: str, name: str, member_id: int) -> str: ...

    def custom_product_id(self) -> str | None: ...

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutInfo: ...

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
