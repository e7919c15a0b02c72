"""Invoices, charges, refunds and disputes: where the money of a subscription or a gift went."""

from __future__ import annotations

from supporters.billing.provider import ChargeInfo, DisputeInfo, InvoiceInfo
from supporters.billing.stripe_gateway import convert
from supporters.billing.stripe_gateway.client import (
    InvalidRequestError,
    client,
    fetch,
    options,
    path,
)


def list_paid_invoices(subscription_id: str) -> list[InvoiceInfo]:
    """Every paid invoice of a subscription, with its payments (what it charged)."""
    found = client().v1.invoices.list(
        params={
            "subscription": subscription_id,
            "status": "paid",
            "limit": 100,
            "expand": ["data.payments"],
        }
    )
    return [convert.to_invoice(invoice) for invoice in found.auto_paging_iter()]


def refund_in_full(payment_intent_id: str, *, idempotency_key: str) -> ChargeInfo:
    """Refund what is left of a payment, as a duplicate; its charge after the refund.

    A payment refunded in full already is left as it is.

    :raises StripeError: Stripe refused for another reason, or could not be reached.
    """
    try:
        refund = client().v1.refunds.create(
            params={
                "payment_intent": payment_intent_id,
                "reason": "duplicate",
                "expand": ["charge"],
            },
            options=options(idempotency_key),
        )
    except InvalidRequestError as exc:
        if exc.code != "charge_already_refunded":
            raise
        intent = fetch(path("payment_intents", payment_intent_id), expand=["latest_charge"])
        return convert.to_charge(intent["latest_charge"])
    return convert.to_charge(refund.charge)


def retrieve_invoice(invoice_id: str) -> InvoiceInfo:
    """An invoice with its payments and its subscription, in one request.

    :raises StripeError: unknown invoice or Stripe unreachable.
    """
    invoice = fetch(
        path("invoices", invoice_id),
        expand=["payments", "parent.subscription_details.subscription"],
    )
    return convert.to_invoice(invoice)


def invoice_paid_by(payment_intent_id: str) -> str | None:
    """The invoice a payment intent pays, if any: charges do not name their invoice (since API
    version 2025-03-31), invoice payments name the payment intent.

    :raises StripeError: Stripe refused or could not be reached.
    """
    found = client().v1.invoice_payments.list(
        params={
            "payment": {"type": "payment_intent", "payment_intent": payment_intent_id},
            "limit": 1,
        }
    )
    return convert.object_id(found.data[0].invoice) if found.data else None


def checkout_session_paid_by(payment_intent_id: str) -> str | None:
    """The Checkout Session a payment intent was made for (a one-time gift), if any.

    :raises StripeError: Stripe refused or could not be reached.
    """
    found = client().v1.checkout.sessions.list(
        params={"payment_intent": payment_intent_id, "limit": 1}
    )
    return found.data[0].id if found.data else None


def retrieve_charge(charge_id: str) -> ChargeInfo:
    """:raises StripeError: unknown charge or Stripe unreachable."""
    return convert.to_charge(fetch(path("charges", charge_id)))


def retrieve_dispute(dispute_id: str) -> DisputeInfo:
    """A dispute with the balance transactions it moved money with (Stripe always sends them).

    :raises StripeError: unknown dispute or Stripe unreachable.
    """
    return convert.to_dispute(fetch(path("disputes", dispute_id)))
