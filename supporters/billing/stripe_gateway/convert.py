"""Stripe's objects, as plain JSON, turned into billing's dataclasses.

The calls read plain dicts (see ``client.fetch``); an SDK object passed in is turned into one
first. The shapes are the pinned API version's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from supporters.billing.provider import (
    ChargeInfo,
    CheckoutInfo,
    DisputeInfo,
    InvoiceInfo,
    PriceInfo,
    ProductInfo,
    SubscriptionInfo,
)


def timestamp(value: int | None) -> dt.datetime | None:
    """A Unix time as an aware UTC datetime."""
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def object_id(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return cast(str, value["id"])


def plain(obj: Any) -> dict[str, Any]:
    """The SDK's object as plain nested dicts (its objects are not mappings since SDK 15)."""
    return cast(dict[str, Any], obj.to_dict() if hasattr(obj, "to_dict") else obj)


def metadata(obj: Any) -> dict[str, str]:
    """An object's metadata, as text."""
    raw = obj.get("metadata") or {}
    return {str(k): str(v) for k, v in raw.items()}


def to_subscription(sub: Any) -> SubscriptionInfo:
    """What we keep of a Stripe subscription (its first item's price and period)."""
    sub = plain(sub)
    items = sub["items"]["data"]
    item = items[0] if items else None
    price = item["price"] if item else None
    recurring = price.get("recurring") if price else None
    details = sub.get("cancellation_details") or {}
    return SubscriptionInfo(
        id=sub["id"],
        customer_id=cast(str, object_id(sub["customer"])),
        status=sub["status"],
        item_id=item["id"] if item else None,
        price_id=price["id"] if price else None,
        product_id=object_id(price.get("product")) if price else None,
        amount=_item_amount(item, price),
        currency=str(sub["currency"]).upper(),
        interval=str(recurring["interval"]) if recurring else "month",
        # Since API version 2025-03-31 the billing period lives on the item.
        current_period_start=timestamp(item.get("current_period_start")) if item else None,
        current_period_end=timestamp(item.get("current_period_end")) if item else None,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        cancel_reason=str(details.get("comment") or ""),
        started_at=timestamp(sub.get("start_date")),
        canceled_at=timestamp(sub.get("canceled_at")),
        ended_at=timestamp(sub.get("ended_at")),
        latest_invoice_id=object_id(sub.get("latest_invoice")),
        metadata=metadata(sub),
    )


def _item_amount(item: dict[str, Any] | None, price: dict[str, Any] | None) -> int:
    if item is None or price is None:
        return 0
    return int(price.get("unit_amount") or 0) * int(item.get("quantity") or 1)


def to_invoice(invoice: Any) -> InvoiceInfo:
    """What we keep of a Stripe invoice, with its payment and expanded subscription."""
    invoice = plain(invoice)
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    payment_intent_id = charge_id = None
    payments = invoice.get("payments")
    for invoice_payment in (payments or {}).get("data", []):
        payment = invoice_payment.get("payment") or {}
        payment_intent_id = object_id(payment.get("payment_intent")) or payment_intent_id
        charge_id = object_id(payment.get("charge")) or charge_id
    transitions = invoice.get("status_transitions") or {}
    expanded = details.get("subscription")
    return InvoiceInfo(
        id=invoice["id"],
        customer_id=cast(str, object_id(invoice["customer"])),
        subscription_id=object_id(details.get("subscription")),
        status=str(invoice["status"]),
        amount_due=int(invoice["amount_due"]),
        amount_paid=int(invoice["amount_paid"]),
        currency=str(invoice["currency"]).upper(),
        created_at=cast(dt.datetime, timestamp(invoice["created"])),
        paid_at=timestamp(transitions.get("paid_at")),
        receipt_url=str(invoice.get("hosted_invoice_url") or ""),
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        attempt_count=int(invoice.get("attempt_count") or 0),
        billing_reason=str(invoice.get("billing_reason") or ""),
        subscription=to_subscription(expanded) if isinstance(expanded, dict) else None,
    )


def to_charge(charge: Any) -> ChargeInfo:
    """What we keep of a Stripe charge."""
    charge = plain(charge)
    return ChargeInfo(
        id=charge["id"],
        customer_id=object_id(charge.get("customer")),
        payment_intent_id=object_id(charge.get("payment_intent")),
        amount=int(charge["amount"]),
        amount_refunded=int(charge.get("amount_refunded") or 0),
        currency=str(charge["currency"]).upper(),
        status=str(charge["status"]),
        disputed=bool(charge.get("disputed")),
        receipt_url=str(charge.get("receipt_url") or ""),
        created_at=cast(dt.datetime, timestamp(charge["created"])),
        metadata=metadata(charge),
    )


def to_dispute(dispute: Any) -> DisputeInfo:
    """What we keep of a Stripe dispute, with what its balance transactions withhold."""
    dispute = plain(dispute)
    amount = int(dispute["amount"])
    currency = str(dispute["currency"]).upper()
    due_by = (dispute.get("evidence_details") or {}).get("due_by")
    return DisputeInfo(
        id=dispute["id"],
        charge_id=cast(str, object_id(dispute["charge"])),
        payment_intent_id=object_id(dispute.get("payment_intent")),
        amount=amount,
        currency=currency,
        reason=str(dispute.get("reason") or ""),
        status=str(dispute["status"]),
        evidence_due_at=timestamp(due_by) if due_by else None,  # 0 when no response is possible
        created_at=cast(dt.datetime, timestamp(dispute["created"])),
        withdrawn_amount=_withdrawn(dispute.get("balance_transactions") or [], amount, currency),
    )


def _withdrawn(transactions: Sequence[dict[str, Any]], amount: int, currency: str) -> int:
    """What a dispute's balance transactions hold back, in the dispute's currency, fees aside.

    Each withdrawal takes the disputed amount and each reinstatement gives it back. In the
    dispute's own currency a transaction's ``amount`` says so exactly (its ``fee`` is Stripe's
    dispute fee); one converted into the account's currency stands for the disputed amount.
    """
    held = 0
    for transaction in transactions:
        moved = int(transaction.get("amount") or 0)
        if str(transaction.get("currency") or "").upper() == currency:
            held -= moved
        elif moved:
            held += amount if moved < 0 else -amount
    return held


def to_checkout(session: Any) -> CheckoutInfo:
    """What we keep of a Checkout Session, with what came expanded with it."""
    session = plain(session)
    currency = session.get("currency")
    subscription = session.get("subscription")
    latest = subscription.get("latest_invoice") if isinstance(subscription, dict) else None
    intent = session.get("payment_intent")
    charge = intent.get("latest_charge") if isinstance(intent, dict) else None
    return CheckoutInfo(
        id=session["id"],
        url=session.get("url"),
        mode=str(session["mode"]),
        status=str(session.get("status") or ""),
        payment_status=str(session.get("payment_status") or ""),
        customer_id=object_id(session.get("customer")),
        subscription_id=object_id(session.get("subscription")),
        payment_intent_id=object_id(session.get("payment_intent")),
        amount_total=session.get("amount_total"),
        currency=str(currency).upper() if currency else None,
        client_reference_id=session.get("client_reference_id"),
        metadata=metadata(session),
        expires_at=timestamp(session.get("expires_at")),
        subscription=to_subscription(subscription) if isinstance(subscription, dict) else None,
        invoice=to_invoice(latest) if isinstance(latest, dict) else None,
        charge_id=object_id(charge),
        receipt_url=str(charge.get("receipt_url") or "") if isinstance(charge, dict) else "",
    )


def to_price(price: Any) -> PriceInfo:
    """What we keep of a Stripe price."""
    price = plain(price)
    recurring = price.get("recurring")
    return PriceInfo(
        id=price["id"],
        product_id=cast(str, object_id(price["product"])),
        unit_amount=int(price.get("unit_amount") or 0),
        currency=str(price["currency"]).upper(),
        interval=str(recurring["interval"]) if recurring else None,
        lookup_key=price.get("lookup_key"),
        active=bool(price.get("active")),
        metadata=metadata(price),
    )


def to_product(product: Any) -> ProductInfo:
    """What we keep of a Stripe product."""
    product = plain(product)
    return ProductInfo(
        id=product["id"],
        name=str(product.get("name") or ""),
        active=bool(product.get("active")),
        metadata=metadata(product),
        description=str(product.get("description") or ""),
    )
