"""The one module that talks to Stripe.

Everything else calls these typed functions and gets plain dataclasses back, never SDK objects:
the services neither import ``stripe`` nor care whether a subscription came from Stripe or from
the demo checkout. The API version is pinned here, so an SDK upgrade cannot change the shapes we
read without a deliberate change to this file.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import quote, urlsplit

import requests
import stripe
import urllib3
from flask import current_app

from supporters.billing.provider import (
    ChargeInfo,
    CheckoutInfo,
    CheckoutRequest,
    DisputeInfo,
    InvoiceInfo,
    NewPrice,
    PriceInfo,
    ProductInfo,
    SubscriptionInfo,
)

log = logging.getLogger(__name__)

#: The Stripe API version every request and every webhook endpoint must speak.
API_VERSION = "2026-10-28.endive"
WEBHOOK_TOLERANCE_SECONDS = 5 * 60
#: Keys of Stripe objects that hold secrets a browser uses, never to be kept.
SECRET_KEYS = ("client_secret", "secret")

# Errors callers handle, re-exported so that no other module imports the SDK.
StripeError = stripe.StripeError
CardError = stripe.CardError
InvalidRequestError = stripe.InvalidRequestError


class SignatureError(ValueError):
    """A webhook whose Stripe-Signature does not verify with any configured secret."""


class NotConfigured(RuntimeError):
    """No Stripe secret key is configured (the demo checkout is used instead)."""


@dataclass(frozen=True)
class EventInfo:
    """A verified webhook event: its id, type and the object it is about."""

    id: str
    type: str
    api_version: str
    livemode: bool
    object_id: str | None
    object_type: str | None
    #: The event as Stripe sent it, less its client secrets (dropped as the body is parsed),
    #: so fit to keep in our database.
    payload: dict[str, Any]


# --- the client ---------------------------------------------------------------------------


def is_configured() -> bool:
    return bool(current_app.config["STRIPE_SECRET_KEY"])


def client() -> stripe.StripeClient:
    """The app's Stripe client, built once from its settings with the API version pinned.

    :raises NotConfigured: no secret key is set.
    """
    key = current_app.config["STRIPE_SECRET_KEY"]
    if not key:
        raise NotConfigured("SUPPORTERS_STRIPE_SECRET_KEY is not set")
    cached = current_app.extensions.get("stripe_client")
    if cached is not None:
        return cast(stripe.StripeClient, cached)
    api_base = current_app.config["STRIPE_API_BASE"]
    built = stripe.StripeClient(
        key,
        stripe_version=API_VERSION,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=2,
        http_client=_http_client(api_base or stripe.DEFAULT_API_BASE),
    )
    current_app.extensions["stripe_client"] = built
    return built


def _http_client(api_base: str) -> stripe.HTTPClient:
    """The SDK's transport: one keep-alive pool, with the proxy settings read once, here.

    ``NO_PROXY`` naming Stripe's host turns the proxy off, as ``requests`` would.
    """
    proxies = requests.utils.get_environ_proxies(api_base)
    proxy = proxies.get(urlsplit(api_base).scheme) or proxies.get("all")
    return PooledHTTPClient(proxy=proxy)


class PooledHTTPClient(stripe.HTTPClient):
    """The SDK's requests sent on one urllib3 pool manager, kept alive between requests.

    ``requests`` (the SDK's default) is urllib3 underneath, with sessions, cookies, hooks and
    environment lookups on top that a client of one API does not use: they were half the
    Python work of a webhook's fetch. Retries stay the SDK's (``max_network_retries``): this
    class only says which failures are worth one, as the SDK's own clients do.
    """

    name = "urllib3"

    def __init__(self, *, timeout: float = 80, proxy: str | None = None) -> None:
        super().__init__(proxy=proxy)
        options: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=timeout, read=timeout),
            "retries": False,
            "maxsize": 10,  # connections kept per host, for threaded servers (as requests does)
            "cert_reqs": "CERT_REQUIRED",
            "ca_certs": stripe.ca_bundle_path,
        }
        self._pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        )

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        """The body (bytes, which the SDK decodes), the status and the headers."""
        response = self._send(method, url, headers, post_data, preload_content=True)
        return response.data, response.status, response.headers

    def request_stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        response = self._send(method, url, headers, post_data, preload_content=False)
        return response, response.status, response.headers

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: Any,
        *,
        preload_content: bool,
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(
                method.upper(),
                url,
                body=body,
                headers=dict(headers or {}),
                redirect=False,
                preload_content=preload_content,
            )
        except urllib3.exceptions.SSLError as exc:
            # Someone is intercepting TLS: retrying would not help.
            raise _connection_error(
                "Could not verify Stripe's TLS certificate", exc, retry=False
            ) from exc
        except (
            urllib3.exceptions.TimeoutError,
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.ProxyError,
        ) as exc:
            raise _connection_error("Could not reach Stripe", exc, retry=True) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _connection_error("Unexpected error talking to Stripe", exc, retry=False) from exc

    def close(self) -> None:
        self._pool.clear()


def _connection_error(message: str, cause: Exception, *, retry: bool) -> stripe.APIConnectionError:
    """The SDK's network error, saying whether its retry loop should try again."""
    return stripe.APIConnectionError(  # type: ignore[no-untyped-call]
        f"{message} ({type(cause).__name__}: {cause}).", should_retry=retry
    )


def _fetch(path: str, *, expand: Sequence[str] = ()) -> dict[str, Any]:
    """GET one object as plain JSON.

    The conversions below read plain dicts, so building the SDK's objects first (costly for
    expanded responses, and turned back into dicts at once) is skipped. The request is still
    the SDK's: the pinned version, retries, and a StripeError for an error response.
    """
    params: dict[str, Any] = {"expand": list(expand)} if expand else {}
    response = client().raw_request("get", path, **params)
    return cast(dict[str, Any], response.data)


def _path(*parts: str) -> str:
    return "/v1/" + "/".join(quote(part, safe="") for part in parts)


def _options(idempotency_key: str | None) -> Any:
    return {"idempotency_key": idempotency_key} if idempotency_key else None


def _time(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _id(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return cast(str, value["id"])


def _plain(obj: Any) -> dict[str, Any]:
    """The SDK's object as plain nested dicts (its objects are not mappings since SDK 15)."""
    return cast(dict[str, Any], obj.to_dict() if hasattr(obj, "to_dict") else obj)


def _metadata(obj: Any) -> dict[str, str]:
    raw = obj.get("metadata") or {}
    return {str(k): str(v) for k, v in raw.items()}


# --- conversions ---------------------------------------------------------------------------


def _subscription(sub: Any) -> SubscriptionInfo:
    sub = _plain(sub)
    items = sub["items"]["data"]
    item = items[0] if items else None
    price = item["price"] if item else None
    recurring = price.get("recurring") if price else None
    details = sub.get("cancellation_details") or {}
    return SubscriptionInfo(
        id=sub["id"],
        customer_id=cast(str, _id(sub["customer"])),
        status=sub["status"],
        item_id=item["id"] if item else None,
        price_id=price["id"] if price else None,
        product_id=_id(price.get("product")) if price else None,
        amount=_item_amount(item, price),
        currency=str(sub["currency"]).upper(),
        interval=str(recurring["interval"]) if recurring else "month",
        # Since API version 2025-03-31 the billing period lives on the item.
        current_period_start=_time(item.get("current_period_start")) if item else None,
        current_period_end=_time(item.get("current_period_end")) if item else None,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        cancel_reason=str(details.get("comment") or ""),
        started_at=_time(sub.get("start_date")),
        canceled_at=_time(sub.get("canceled_at")),
        ended_at=_time(sub.get("ended_at")),
        latest_invoice_id=_id(sub.get("latest_invoice")),
        metadata=_metadata(sub),
    )


def _item_amount(item: dict[str, Any] | None, price: dict[str, Any] | None) -> int:
    if item is None or price is None:
        return 0
    return int(price.get("unit_amount") or 0) * int(item.get("quantity") or 1)


def _invoice(invoice: Any) -> InvoiceInfo:
    invoice = _plain(invoice)
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    payment_intent_id = charge_id = None
    payments = invoice.get("payments")
    for invoice_payment in (payments or {}).get("data", []):
        payment = invoice_payment.get("payment") or {}
        payment_intent_id = _id(payment.get("payment_intent")) or payment_intent_id
        charge_id = _id(payment.get("charge")) or charge_id
    transitions = invoice.get("status_transitions") or {}
    expanded = details.get("subscription")
    return InvoiceInfo(
        id=invoice["id"],
        customer_id=cast(str, _id(invoice["customer"])),
        subscription_id=_id(details.get("subscription")),
        status=str(invoice["status"]),
        amount_due=int(invoice["amount_due"]),
        amount_paid=int(invoice["amount_paid"]),
        currency=str(invoice["currency"]).upper(),
        created_at=cast(dt.datetime, _time(invoice["created"])),
        paid_at=_time(transitions.get("paid_at")),
        receipt_url=str(invoice.get("hosted_invoice_url") or ""),
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
        attempt_count=int(invoice.get("attempt_count") or 0),
        billing_reason=str(invoice.get("billing_reason") or ""),
        subscription=_subscription(expanded) if isinstance(expanded, dict) else None,
    )


def _charge(charge: Any) -> ChargeInfo:
    charge = _plain(charge)
    return ChargeInfo(
        id=charge["id"],
        customer_id=_id(charge.get("customer")),
        payment_intent_id=_id(charge.get("payment_intent")),
        amount=int(charge["amount"]),
        amount_refunded=int(charge.get("amount_refunded") or 0),
        currency=str(charge["currency"]).upper(),
        status=str(charge["status"]),
        disputed=bool(charge.get("disputed")),
        receipt_url=str(charge.get("receipt_url") or ""),
        created_at=cast(dt.datetime, _time(charge["created"])),
        metadata=_metadata(charge),
    )


def _dispute(dispute: Any) -> DisputeInfo:
    dispute = _plain(dispute)
    amount = int(dispute["amount"])
    currency = str(dispute["currency"]).upper()
    due_by = (dispute.get("evidence_details") or {}).get("due_by")
    return DisputeInfo(
        id=dispute["id"],
        charge_id=cast(str, _id(dispute["charge"])),
        payment_intent_id=_id(dispute.get("payment_intent")),
        amount=amount,
        currency=currency,
        reason=str(dispute.get("reason") or ""),
        status=str(dispute["status"]),
        evidence_due_at=_time(due_by) if due_by else None,  # 0 when no response is possible
        created_at=cast(dt.datetime, _time(dispute["created"])),
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


def _checkout(session: Any) -> CheckoutInfo:
    session = _plain(session)
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
        customer_id=_id(session.get("customer")),
        subscription_id=_id(session.get("subscription")),
        payment_intent_id=_id(session.get("payment_intent")),
        amount_total=session.get("amount_total"),
        currency=str(currency).upper() if currency else None,
        client_reference_id=session.get("client_reference_id"),
        metadata=_metadata(session),
        expires_at=_time(session.get("expires_at")),
        subscription=_subscription(subscription) if isinstance(subscription, dict) else None,
        invoice=_invoice(latest) if isinstance(latest, dict) else None,
        charge_id=_id(charge),
        receipt_url=str(charge.get("receipt_url") or "") if isinstance(charge, dict) else "",
    )


def _price(price: Any) -> PriceInfo:
    price = _plain(price)
    recurring = price.get("recurring")
    return PriceInfo(
        id=price["id"],
        product_id=cast(str, _id(price["product"])),
        unit_amount=int(price.get("unit_amount") or 0),
        currency=str(price["currency"]).upper(),
        interval=str(recurring["interval"]) if recurring else None,
        lookup_key=price.get("lookup_key"),
        active=bool(price.get("active")),
        metadata=_metadata(price),
    )


def _product(product: Any) -> ProductInfo:
    product = _plain(product)
    return ProductInfo(
        id=product["id"],
        name=str(product.get("name") or ""),
        active=bool(product.get("active")),
        metadata=_metadata(product),
        description=str(product.get("description") or ""),
    )


# --- customers and checkout ------------------------------------------------------------------


def create_customer(*, email: str, name: str, member_id: int) -> str:
    """Create the member's Stripe customer; the idempotency key makes a retry return the same one.

    :raises StripeError: Stripe refused or could not be reached.
    """
    customer = client().v1.customers.create(
        params={"email": email, "name": name or email, "metadata": {"member_id": str(member_id)}},
        options=_options(f"customer-member-{member_id}"),
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
    else:
        params["payment_intent_data"] = {"metadata": dict(metadata)}
    session = client().v1.checkout.sessions.create(
        params=cast(Any, params), options=_options(request.idempotency_key)
    )
    return _checkout(session)


def retrieve_checkout_session(session_id: str) -> CheckoutInfo:
    """A session with its subscription and latest invoice, or its payment's charge, at once.

    :raises StripeError: unknown session or Stripe unreachable.
    """
    session = _fetch(
        _path("checkout", "sessions", session_id),
        expand=["subscription.latest_invoice.payments", "payment_intent.latest_charge"],
    )
    return _checkout(session)


def expire_checkout_session(session_id: str) -> CheckoutInfo:
    """Close a Checkout Session so that it can no longer be paid; the session as it is now.

    One that was already completed (paid) or had expired is returned as it is, with its
    subscription and latest invoice, as :func:`retrieve_checkout_session` gives them.

    :raises StripeError: Stripe refused for another reason, or could not be reached.
    """
    try:
        session = client().v1.checkout.sessions.expire(session_id)
    except stripe.InvalidRequestError:
        # Stripe expires open sessions only; the error does not say what became of this one.
        current = retrieve_checkout_session(session_id)
        if current.status == "open":
            raise
        return current
    return _checkout(session)


def create_portal_session(*, customer_id: str, return_url: str) -> str:
    """A Billing Portal link where the member updates their card and sees invoices."""
    session = client().v1.billing_portal.sessions.create(
        params={"customer": customer_id, "return_url": return_url}
    )
    return session.url


# --- subscriptions, invoices, charges -------------------------------------------------------


def retrieve_subscription(subscription_id: str) -> SubscriptionInfo:
    """:raises StripeError: unknown subscription or Stripe unreachable."""
    return _subscription(_fetch(_path("subscriptions", subscription_id)))


def list_subscriptions(customer_id: str) -> list[SubscriptionInfo]:
    """Every subscription of a customer, whatever its status (for reconciliation)."""
    found = client().v1.subscriptions.list(
        params={"customer": customer_id, "status": "all", "limit": 100}
    )
    return [_subscription(s) for s in found.auto_paging_iter()]


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
        options=_options(idempotency_key),
    )
    return _subscription(updated)


def set_cancel_at_period_end(
    subscription_id: str, *, cancel: bool, reason: str = ""
) -> SubscriptionInfo:
    """Schedule (or withdraw) the end of a subscription at the end of the paid period."""
    params: dict[str, Any] = {"cancel_at_period_end": cancel}
    if cancel:
        params["cancellation_details"] = {"comment": reason[:500]}
    updated = client().v1.subscriptions.update(subscription_id, params=cast(Any, params))
    return _subscription(updated)


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
            subscription_id, params=cast(Any, params), options=_options(idempotency_key)
        )
    except stripe.InvalidRequestError:
        current = retrieve_subscription(subscription_id)
        if current.status not in ("canceled", "incomplete_expired"):
            raise
        return current
    return _subscription(cancelled)


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
        options=_options(idempotency_key),
    )
    return _subscription(updated)


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
    return [_invoice(invoice) for invoice in found.auto_paging_iter()]


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
            options=_options(idempotency_key),
        )
    except stripe.InvalidRequestError as exc:
        if exc.code != "charge_already_refunded":
            raise
        intent = _fetch(_path("payment_intents", payment_intent_id), expand=["latest_charge"])
        return _charge(intent["latest_charge"])
    return _charge(refund.charge)


def retrieve_invoice(invoice_id: str) -> InvoiceInfo:
    """An invoice with its payments and its subscription, in one request.

    :raises StripeError: unknown invoice or Stripe unreachable.
    """
    invoice = _fetch(
        _path("invoices", invoice_id),
        expand=["payments", "parent.subscription_details.subscription"],
    )
    return _invoice(invoice)


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
    return _id(found.data[0].invoice) if found.data else None


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
    return _charge(_fetch(_path("charges", charge_id)))


def retrieve_dispute(dispute_id: str) -> DisputeInfo:
    """A dispute with the balance transactions it moved money with (Stripe always sends them).

    :raises StripeError: unknown dispute or Stripe unreachable.
    """
    return _dispute(_fetch(_path("disputes", dispute_id)))


# --- products and prices (billing sync-stripe) -----------------------------------------------


def list_owned_products(owner: str) -> list[ProductInfo]:
    """Products this installation made (metadata ``supporters_owner``); others are never touched."""
    found = client().v1.products.list(params={"limit": 100})
    products = [_product(p) for p in found.auto_paging_iter()]
    return [p for p in products if p.metadata.get("supporters_owner") == owner]


def create_product(
    *, name: str, description: str, metadata: Mapping[str, str], idempotency_key: str
) -> ProductInfo:
    params: dict[str, Any] = {"name": name, "metadata": dict(metadata)}
    if description:
        params["description"] = description
    return _product(
        client().v1.products.create(params=cast(Any, params), options=_options(idempotency_key))
    )


def retrieve_product(product_id: str) -> ProductInfo:
    """:raises StripeError: unknown product or Stripe unreachable."""
    return _product(_fetch(_path("products", product_id)))


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
    return _product(client().v1.products.update(product_id, params=cast(Any, params)))


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
        found.update({p.lookup_key: _price(p) for p in page.data if p.lookup_key})
    return found


def list_active_prices(product_id: str) -> list[PriceInfo]:
    """Every active price of a product."""
    found = client().v1.prices.list(params={"product": product_id, "active": True, "limit": 100})
    return [_price(p) for p in found.auto_paging_iter()]


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
        options=_options(idempotency_key),
    )
    return _price(price)


def archive_price(price_id: str) -> None:
    """Prices cannot change or be deleted in Stripe: an outdated one is made inactive."""
    client().v1.prices.update(price_id, params={"active": False})


# --- webhooks ---------------------------------------------------------------------------------


def verify_event(payload: bytes, signature: str | None, secrets: Sequence[str]) -> EventInfo:
    """Verify a webhook's signature on the raw body with any configured secret, and parse it.

    :raises SignatureError: no secret configured, no signature, a bad one, too old, or a body
        that is not UTF-8.
    """
    if not secrets:
        raise SignatureError("no webhook signing secret is configured")
    if not signature:
        raise SignatureError("the Stripe-Signature header is missing")
    try:
        # Stripe sends JSON, which is UTF-8: any other body did not come from Stripe.
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureError("the body is not UTF-8 text") from exc
    last_error: Exception | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, secret, WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            last_error = exc
            continue
        return _event(payload)
    raise SignatureError(str(last_error))


def _event(payload: bytes) -> EventInfo:
    import json

    # Most events name no secret: parsing them needs no hook.
    hook = _without_secrets if b'secret"' in payload else None
    try:
        data = json.loads(payload, object_hook=hook)
        obj = data["data"]["object"]
        return EventInfo(
            id=str(data["id"]),
            type=str(data["type"]),
            api_version=str(data.get("api_version") or ""),
            livemode=bool(data.get("livemode")),
            object_id=obj.get("id"),
            object_type=obj.get("object"),
            payload=data,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureError(f"the payload is not a Stripe event: {exc}") from exc


def _without_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON object just parsed, less its client secrets (the parser calls it for each one)."""
    for key in SECRET_KEYS:
        obj.pop(key, None)
    return obj
