"""A local stand-in for Stripe Checkout, for trying the app without a Stripe account.

It is used only when no Stripe secret key is configured, and never in production (the
configuration check refuses that). A "checkout session" is a signed token holding what the
reader chose; paying it (:func:`pay`) builds the same ``SubscriptionInfo`` and ``InvoiceInfo``
that Stripe's answers turn into, which ``checkout.pay_demo_checkout`` hands to the same
``sync_subscription`` and ``record_invoice``.
Our own rows are the demo provider's state: asking it about a subscription reads them back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any, cast

import sqlalchemy as sa
from flask import current_app, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from supporters.billing.models import (
    CheckoutSession,
    CheckoutStatus,
    Interval,
    Payment,
    PaymentStatus,
    Subscription,
)
from supporters.billing.provider import (
    ChargeInfo,
    CheckoutInfo,
    CheckoutRequest,
    InvoiceInfo,
    NewPrice,
    SubscriptionInfo,
)
from supporters.db import utcnow
from supporters.extensions import db

CUSTOM_PRODUCT = "prod_demo_custom"


class DemoCheckoutError(LookupError):
    """A demo checkout token that was not made here."""


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="supporters-demo-checkout")


def read_session(session_id: str) -> dict[str, Any]:
    """:raises DemoCheckoutError: a token not signed by this app."""
    try:
        return cast(dict[str, Any], _serializer().loads(session_id))
    except BadSignature as exc:
        raise DemoCheckoutError(session_id) from exc


def first_charge_at(data: Mapping[str, Any]) -> dt.datetime | None:
    """When a demo checkout's subscription is first charged, if that is deferred (a trial)."""
    moment = data.get("first_charge_at")
    return None if moment is None else dt.datetime.fromtimestamp(int(moment), dt.UTC)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()[:24]


def subscription_id_for(session_id: str) -> str:
    return f"sub_demo_{_digest(session_id)}"


def is_expired(session_id: str) -> bool:
    """Whether the billing services closed this checkout (the member opened another)."""
    status = db.session.scalar(
        sa.select(CheckoutSession.status).where(
            CheckoutSession.stripe_checkout_session_id == session_id
        )
    )
    return status is CheckoutStatus.EXPIRED


class DemoBackend:
    """Answers the billing services' calls from our own database."""

    name = "demo"

    def create_customer(self, *, email: str, name: str, member_id: int) -> str:
        return f"cus_demo_{member_id}"

    def custom_product_id(self) -> str | None:
        return CUSTOM_PRODUCT

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutInfo:
        new_price = request.new_price
        assert new_price is not None, "demo tiers have no provider prices"
        session_id = _serializer().dumps(
            {
                "key": request.idempotency_key,
                "customer": request.customer_id,
                "mode": request.mode,
                "amount": new_price.amount,
                "currency": new_price.currency,
                "interval": new_price.interval,
                "metadata": dict(request.metadata),
                "ref": request.client_reference_id,
                "success_url": request.success_url,
                "cancel_url": request.cancel_url,
                "first_charge_at": int(request.first_charge_at.timestamp())
                if request.first_charge_at is not None and request.mode == "subscription"
                else None,
            }
        )
        return self._info(session_id, read_session(session_id))

    def _info(self, session_id: str, data: Mapping[str, Any]) -> CheckoutInfo:
        subscription_id = (
            subscription_id_for(session_id) if data["mode"] == "subscription" else None
        )
        payment_intent_id = f"pi_demo_{_digest(session_id)}" if data["mode"] == "payment" else None
        if subscription_id:
            done = db.session.scalar(
                sa.select(Subscription.id).where(
                    Subscription.stripe_subscription_id == subscription_id
                )
            )
        else:
            done = db.session.scalar(
                sa.select(Payment.id).where(Payment.stripe_payment_intent_id == payment_intent_id)
            )
        status = "complete" if done else "expired" if is_expired(session_id) else "open"
        deferred = first_charge_at(data) is not None
        payment_status = "unpaid"
        if done:
            payment_status = "no_payment_required" if deferred else "paid"
        return CheckoutInfo(
            id=session_id,
            url=url_for("billing.demo_checkout", session_id=session_id),
            mode=str(data["mode"]),
            status=status,
            payment_status=payment_status,
            customer_id=str(data["customer"]),
            subscription_id=subscription_id if done else None,
            payment_intent_id=payment_intent_id,
            amount_total=0 if deferred else int(data["amount"]),
            currency=str(data["currency"]),
            client_reference_id=str(data["ref"]),
            metadata=dict(data["metadata"]),
        )

    def retrieve_checkout_session(self, session_id: str) -> CheckoutInfo:
        return self._info(session_id, read_session(session_id))

    def expire_checkout_session(self, session_id: str) -> CheckoutInfo:
        """Closed as Stripe closes one: the services mark it expired, and it cannot be paid."""
        info = self.retrieve_checkout_session(session_id)
        if info.status != "open":
            return info
        return dataclasses.replace(info, status="expired", url=None)

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionInfo:
        row = db.session.scalars(
            sa.select(Subscription).where(Subscription.stripe_subscription_id == subscription_id)
        ).one()
        return subscription_info(row)

    def retrieve_invoice(self, invoice_id: str) -> InvoiceInfo:
        payment = db.session.scalars(
            sa.select(Payment).where(Payment.stripe_invoice_id == invoice_id)
        ).one()
        return _invoice_info(payment)

    def cancel_subscription_now(
        self, subscription_id: str, *, reason: str = "", idempotency_key: str | None = None
    ) -> SubscriptionInfo:
        current = self.retrieve_subscription(subscription_id)
        if current.status == "canceled":
            return current
        now = utcnow()
        return _replace(
            current,
            status="canceled",
            cancel_at_period_end=False,
            cancel_reason=reason or current.cancel_reason,
            canceled_at=now,
            ended_at=now,
        )

    def list_paid_invoices(self, subscription_id: str) -> list[InvoiceInfo]:
        payments = db.session.scalars(
            sa.select(Payment)
            .join(Subscription, Subscription.id == Payment.subscription_id)
            .where(
                Subscription.stripe_subscription_id == subscription_id,
                Payment.stripe_invoice_id.is_not(None),
                Payment.status == PaymentStatus.PAID,
            )
        ).all()
        return [_invoice_info(payment) for payment in payments]

    def refund_in_full(self, payment_intent_id: str, *, idempotency_key: str) -> ChargeInfo:
        """The demo moved no money: its payment is only marked refunded, as Stripe reports it."""
        payment = db.session.scalars(
            sa.select(Payment).where(Payment.stripe_payment_intent_id == payment_intent_id)
        ).one()
        return ChargeInfo(
            id=payment.stripe_charge_id or f"ch_demo_{_digest(payment_intent_id)}",
            customer_id=None,
            payment_intent_id=payment_intent_id,
            amount=payment.amount,
            amount_refunded=payment.amount,
            currency=payment.currency,
            status="succeeded",
            disputed=False,
            receipt_url="",
            created_at=payment.created_at,
        )

    def change_subscription_price(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str | None,
        new_price: NewPrice | None,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> SubscriptionInfo:
        assert new_price is not None and new_price.interval is not None
        current = self.retrieve_subscription(subscription_id)
        return _replace(
            current,
            amount=new_price.amount,
            interval=new_price.interval,
            metadata=dict(metadata),
            price_id=None,
            cancel_at_period_end=False,
        )

    def set_cancel_at_period_end(
        self, subscription_id: str, *, cancel: bool, reason: str = ""
    ) -> SubscriptionInfo:
        current = self.retrieve_subscription(subscription_id)
        return _replace(
            current, cancel_at_period_end=cancel, cancel_reason=reason if cancel else ""
        )

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        return url_for("billing.demo_portal")


def _replace(info: SubscriptionInfo, **changes: Any) -> SubscriptionInfo:
    return dataclasses.replace(info, **changes)


def _invoice_info(payment: Payment) -> InvoiceInfo:
    """Our payment row of an invoice, as the provider would describe the invoice."""
    subscription = payment.subscription
    return InvoiceInfo(
        id=payment.stripe_invoice_id or "",
        customer_id=subscription.stripe_customer_id or "" if subscription else "",
        subscription_id=subscription.stripe_subscription_id if subscription else None,
        status="paid" if payment.status is PaymentStatus.PAID else "open",
        amount_due=payment.amount,
        amount_paid=payment.amount if payment.status is PaymentStatus.PAID else 0,
        currency=payment.currency,
        created_at=payment.created_at,
        paid_at=payment.paid_at,
        receipt_url="",
        payment_intent_id=payment.stripe_payment_intent_id,
        charge_id=payment.stripe_charge_id,
        attempt_count=1,
        billing_reason="subscription_cycle",
    )


def subscription_info(row: Subscription) -> SubscriptionInfo:
    """Our row, as the provider would describe it."""
    metadata = {"member_id": str(row.member_id), "tier": row.tier.slug if row.tier else "custom"}
    return SubscriptionInfo(
        id=row.stripe_subscription_id or "",
        customer_id=row.stripe_customer_id or "",
        status=row.status.value,
        item_id="si_demo",
        price_id=row.stripe_price_id,
        product_id=CUSTOM_PRODUCT,
        amount=row.amount,
        currency=row.currency,
        interval=row.interval.value,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
        cancel_reason=row.cancel_reason,
        started_at=row.started_at,
        canceled_at=row.canceled_at,
        ended_at=row.ended_at,
        latest_invoice_id=None,
        metadata=metadata,
    )


@dataclasses.dataclass(frozen=True)
class DemoPayment:
    """What paying a demo checkout makes, as Stripe would report it: a gift's checkout, paid;
    or a new subscription (``incomplete``, as Stripe first reports it) and its first invoice,
    paid."""

    gift: CheckoutInfo | None = None
    subscription: SubscriptionInfo | None = None
    invoice: InvoiceInfo | None = None
    #: The subscription's status once its first invoice is paid: ``trialing`` until a deferred
    #: first charge.
    status_after: str = "active"


def pay(session_id: str) -> DemoPayment:
    """The reader pressed "Pay" on the demo page: what Stripe would report (nothing is stored;
    ``checkout.pay_demo_checkout`` records it).

    :raises DemoCheckoutError: a token not made here, or a checkout closed since.
    """
    data = read_session(session_id)
    if is_expired(session_id):
        raise DemoCheckoutError(session_id)
    if data["mode"] == "payment":
        info = DemoBackend()._info(session_id, data)
        return DemoPayment(gift=dataclasses.replace(info, status="complete", payment_status="paid"))
    now = utcnow()
    customer_id = str(data["customer"])
    subscription_id = subscription_id_for(session_id)
    deferred_to = first_charge_at(data)
    # A deferred first charge: a trial until then, as Stripe makes it, and nothing paid today.
    period_end = deferred_to or Interval(str(data["interval"])).after(now)
    due = 0 if deferred_to else int(data["amount"])
    subscription = SubscriptionInfo(
        id=subscription_id,
        customer_id=customer_id,
        status="trialing" if deferred_to else "incomplete",
        item_id="si_demo",
        price_id=None,
        product_id=CUSTOM_PRODUCT,
        amount=int(data["amount"]),
        currency=str(data["currency"]),
        interval=str(data["interval"]),
        current_period_start=now,
        current_period_end=period_end,
        cancel_at_period_end=False,
        cancel_reason="",
        started_at=now,
        canceled_at=None,
        ended_at=None,
        latest_invoice_id=None,
        metadata=dict(data["metadata"]),
    )
    invoice = InvoiceInfo(
        id=f"in_demo_{_digest(session_id)}",
        customer_id=customer_id,
        subscription_id=subscription_id,
        status="paid",
        amount_due=due,
        amount_paid=due,
        currency=str(data["currency"]),
        created_at=now,
        paid_at=now,
        receipt_url="",
        payment_intent_id=None if deferred_to else f"pi_demo_{_digest(session_id)}",
        charge_id=None,
        attempt_count=1,
        billing_reason="subscription_create",
    )
    return DemoPayment(
        subscription=subscription,
        invoice=invoice,
        status_after="trialing" if deferred_to else "active",
    )
