"""A stateful fake of the Stripe API, served on 127.0.0.1, for tests and the local benchmark.

The project's real gateway talks to it through the real SDK; only the base address changes::

    with FakeStripe() as fake:
        client = stripe.StripeClient(
            "sk_test_fake", stripe_version=API_VERSION, base_addresses={"api": fake.api_base}
        )
        session = client.v1.checkout.sessions.create(params={"mode": "subscription", ...})
        events = fake.complete_checkout(session.id)  # what Stripe does when the supporter pays

Objects are answered in the shapes of API version ``2026-10-28.endive`` (the version SDK 16.1
pins), with every field the SDK's typed resources declare (null where meaningless). Fields Stripe
sends only when asked (``invoice.payments``, ``checkout.session.line_items``, ``charge.refunds``,
``customer.subscriptions``) come through ``expand[]``. Shapes worth knowing in this version:

* ``current_period_start``/``current_period_end`` live on subscription *items*;
* an invoice names its subscription at ``parent.subscription_details.subscription`` and each
  line's price at ``lines.data[].pricing.price_details.price``;
* an invoice's payments are ``invoice_payment`` objects (``payment.payment_intent``); charges and
  payment intents do not name an invoice;
* a one-off invoice (``POST /v1/invoiceitems``, ``POST /v1/invoices``, ``/finalize``, ``/pay``,
  as the Dashboard makes one) has ``parent: null``, and its lines come from invoice items.

Every state change appends an event to a log like Stripe's (``GET /v1/events``). The fake does
not deliver webhooks: tests take the events that the control methods return
(:meth:`FakeStripe.complete_checkout`, :meth:`FakeStripe.renew`, ...) and post them to the app,
signed with :func:`sign_payload` (or :meth:`FakeStripe.webhook_request`).

Parameters the fake does not model are refused with Stripe's "Received unknown parameter" error,
so an unsupported or misspelt parameter fails loudly instead of being ignored.

Trials: a subscription-mode Checkout Session takes ``subscription_data[trial_end]`` (at
least 48 hours ahead, at most 730 days, as Checkout requires). Its subscription starts
``trialing``, with ``trial_start``/``trial_end``, its billing cycle anchored at ``trial_end`` and a
first ``subscription_create`` invoice for 0 (paid at once; the session's ``payment_status`` is
``no_payment_required``). :meth:`FakeStripe.renew` ends the trial: the clock moves to
``trial_end`` and the first real charge is a ``subscription_cycle`` invoice.

Limitations: no prorations (``proration_behavior`` is validated, but changing price within the
same interval invoices nothing; switching interval restarts the period and invoices the full new
price); no ``trial_period_days``, ``customer.subscription.trial_will_end`` or trials outside
Checkout; no coupons, taxes, schedules, payment methods or setup mode; one test card (Visa
4242) that pays unless a control method says otherwise; search is a small subset (customers
only); Checkout in payment mode creates no invoice; a one-off invoice is charged only by
``/pay``, with its ``default_payment_method`` (one the customer has paid with):
``auto_advance`` is recorded, but nothing advances by itself; requests are served one at a
time. The balance is kept in each charge's currency (no conversions); balance transactions
exist only on the disputes that moved money (``dispute.balance_transactions``), with a fixed
dispute fee; no appeals, and no evidence files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import random
import re
import string
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "API_VERSION",
    "FakeStripe",
    "RecordedRequest",
    "StripeError",
    "event_payload",
    "parse_form",
    "sign_payload",
]

API_VERSION = "2026-10-28.endive"
"""The Stripe API version whose shapes the fake answers in (pinned by ``stripe==16.1.0``)."""

JSON = dict[str, Any]
_T = TypeVar("_T")

_ALPHANUMERIC = string.ascii_letters + string.digits
_DAY = 24 * 60 * 60
_CHECKOUT_LIFETIME = _DAY
_MIN_CHECKOUT_TRIAL = 2 * _DAY  # Checkout's shortest trial (``subscription_data[trial_end]``)
_MAX_TRIAL = 730 * _DAY
_RETRY_DELAY = 3 * _DAY  # when Stripe's retry schedule next tries a failed invoice
_MAX_EXPAND_DEPTH = 4
_MAX_LOOKUP_KEYS = 10  # per price list request
_ZERO_DECIMAL_CURRENCIES = frozenset(
    ("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga")
    + ("pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf")
)
_CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
_INTERVALS = ("day", "week", "month", "year")
_TAX_BEHAVIORS = ("exclusive", "inclusive", "unspecified")
_FEEDBACK = (
    "customer_service",
    "low_quality",
    "missing_features",
    "other",
    "switched_service",
    "too_complex",
    "too_expensive",
    "unused",
)
_LIVE = ("active", "past_due", "trialing", "unpaid")
_ENDED = ("canceled", "incomplete_expired")
_AWAITING_PAYMENT = ("incomplete", "past_due", "unpaid")
_SUBSCRIPTION_STATUSES = (*_LIVE, *_ENDED, "incomplete", "paused")
# Disputes: statuses that wait for the merchant's evidence, and those the bank is reviewing.
_DISPUTE_NEEDS_RESPONSE = {
    "needs_response": "under_review",
    "warning_needs_response": "warning_under_review",
}
_DISPUTE_UNDER_REVIEW = ("under_review", "warning_under_review")
_DISPUTE_FEE = 1500  # Stripe's dispute fee, in the minor unit of the balance's currency


# --------------------------------------------------------------------------------------------
# Webhook payloads and signatures


def event_payload(event: Mapping[str, Any]) -> bytes:
    """The body Stripe posts to a webhook endpoint for ``event``: pretty-printed JSON bytes."""
    return json.dumps(event, indent=2).encode("utf-8")


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload``, computed exactly as Stripe does.

    ``t`` is the signing time (the real time unless given, since verifiers compare it with their
    clock); ``v1`` is the hex HMAC-SHA256 of ``f"{t}.{payload}"`` keyed with the secret.
    """
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode("utf-8"), f"{signed_at}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={signed_at},v1={digest}"


# --------------------------------------------------------------------------------------------
# Errors


class StripeError(Exception):
    """An API error, answered as Stripe does: ``{"error": {"type", "message", ...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.extra = extra

    def body(self) -> JSON:
        """The JSON body of the error response."""
        error: JSON = {"message": self.message, "type": self.error_type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}

    @classmethod
    def invalid(
        cls, message: str, param: str | None = None, code: str | None = None
    ) -> StripeError:
        """A 400 ``invalid_request_error``."""
        return cls(400, message, param=param, code=code)

    @classmethod
    def missing_param(cls, name: str) -> StripeError:
        """A required parameter was not sent."""
        return cls.invalid(f"Missing required param: {name}.", name, "parameter_missing")

    @classmethod
    def unknown_param(cls, name: str) -> StripeError:
        """A parameter that Stripe (or this fake) does not take was sent."""
        return cls.invalid(f"Received unknown parameter: {name}", name, "parameter_unknown")


class _NoSuchObject(StripeError, ValueError):
    """Stripe's 404 for an unknown id; a ``ValueError`` for callers of the control API."""

    def __init__(self, kind: str, object_id: str, param: str = "id") -> None:
        super().__init__(
            404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
        )


# --------------------------------------------------------------------------------------------
# Form parsing: Stripe's nested bracket syntax


_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def parse_form(pairs: Iterable[tuple[str, str]]) -> JSON:
    """Nest form pairs the way Stripe reads them.

    ``metadata[member_id]=7`` becomes ``{"metadata": {"member_id": "7"}}``;
    ``line_items[0][price]=p`` becomes ``{"line_items": [{"price": "p"}]}``; ``expand[]=a`` and
    ``expand[0]=a`` both become ``{"expand": ["a"]}``. Values stay strings (Stripe coerces them
    per parameter). A ``metadata`` hash keeps numeric keys as keys.

    :raises StripeError: for a malformed key, or a key used both as a value and as a hash.
    """
    root: JSON = {}
    for key, value in pairs:
        _assign(root, _key_path(key), value, key)
    nested: JSON = _listify(root)
    return nested


def _key_path(key: str) -> list[str]:
    head, bracket, rest = key.partition("[")
    if not head:
        raise StripeError.invalid(f"Invalid parameter name: {key}", key)
    if not bracket:
        return [head]
    tail = bracket + rest
    parts: list[str] = _BRACKETS.findall(tail)
    if "".join(f"[{part}]" for part in parts) != tail or "" in parts[:-1]:
        raise StripeError.invalid(f"Invalid parameter name: {key}", key)
    return [head, *parts]


def _assign(root: JSON, path: list[str], value: str, key: str) -> None:
    *parents, last = path
    appending = last == ""
    if appending:
        *parents, last = parents
    node = root
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise StripeError.invalid(f"Invalid hash for parameter {key}", key)
        node = child
    if appending:
        values = node.setdefault(last, [])
        if not isinstance(values, list):
            raise StripeError.invalid(f"Invalid array for parameter {key}", key)
        values.append(value)
    elif isinstance(node.get(last), dict | list):
        raise StripeError.invalid(f"Invalid hash for parameter {key}", key)
    else:
        node[last] = value


def _listify(node: Any, key: str | None = None) -> Any:
    """Turn hashes indexed ``0, 1, ...`` into lists, as Stripe does for array parameters."""
    if isinstance(node, list):
        return [_listify(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {name: _listify(value, name) for name, value in node.items()}
    if key != "metadata" and converted and all(name.isdigit() for name in converted):
        return [converted[name] for name in sorted(converted, key=int)]
    return converted


class _Params:
    """Typed reads of one level of parsed parameters, failing with Stripe's messages."""

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path  # e.g. "line_items[0]"; empty at the top level

    def name(self, key: str) -> str:
        """The parameter's full name as Stripe reports it, e.g. ``line_items[0][price]``."""
        return f"{self.path}[{key}]" if self.path else key

    def only(self, *allowed: str) -> None:
        """Refuse any parameter not in ``allowed`` (``expand`` is always allowed at the top)."""
        for key in self.data:
            if key not in allowed and not (key == "expand" and not self.path):
                raise StripeError.unknown_param(self.name(key))

    def has(self, key: str) -> bool:
        return key in self.data

    def text(
        self, key: str, *, required: bool = False, choices: Collection[str] | None = None
    ) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise StripeError.missing_param(self.name(key))
            return None
        if not isinstance(value, str):
            raise StripeError.invalid(f"Invalid string: {self.name(key)}", self.name(key))
        if choices is not None and value not in choices:
            raise StripeError.invalid(
                f"Invalid {self.name(key)}: must be one of {', '.join(choices)}", self.name(key)
            )
        return value

    def required_text(self, key: str, *, choices: Collection[str] | None = None) -> str:
        value = self.text(key, required=True, choices=choices)
        assert value is not None
        return value

    def integer(self, key: str, *, minimum: int | None = None) -> int | None:
        value = self.text(key)
        if value is None:
            return None
        if not re.fullmatch(r"-?\d+", value):
            raise StripeError.invalid(f"Invalid integer: {value}", self.name(key))
        number = int(value)
        if minimum is not None and number < minimum:
            raise StripeError.invalid(
                f"This value must be greater than or equal to {minimum}.", self.name(key)
            )
        return number

    def required_integer(self, key: str, *, minimum: int | None = None) -> int:
        number = self.integer(key, minimum=minimum)
        if number is None:
            raise StripeError.missing_param(self.name(key))
        return number

    def boolean(self, key: str) -> bool | None:
        value = self.text(key)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise StripeError.invalid(f"Invalid boolean: {value}", self.name(key))
        return value == "true"

    def nested(self, key: str, *, required: bool = False) -> _Params | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise StripeError.missing_param(self.name(key))
            return None
        if not isinstance(value, dict):
            raise StripeError.invalid(f"Invalid hash: {self.name(key)}", self.name(key))
        return _Params(value, self.name(key))

    def nested_list(self, key: str) -> list[_Params]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise StripeError.invalid(f"Invalid array: {self.name(key)}", self.name(key))
        return [_Params(item, f"{self.name(key)}[{index}]") for index, item in enumerate(value)]

    def strings(self, key: str) -> list[str] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise StripeError.invalid(f"Invalid array: {self.name(key)}", self.name(key))
        return list(value)

    def metadata(self, current: Mapping[str, str] | None = None) -> dict[str, str]:
        """``metadata`` applied to ``current``: an empty value unsets its key, ``""`` all keys."""
        merged = dict(current or {})
        value = self.data.get("metadata")
        if value is None:
            return merged
        if value == "":
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise StripeError.invalid(f"Invalid hash: {self.name('metadata')}", "metadata")
        for key, item in value.items():
            param = f"{self.name('metadata')}[{key}]"
            if len(key) > 40:
                raise StripeError.invalid("Metadata keys can have up to 40 characters.", param)
            if len(item) > 500:
                raise StripeError.invalid("Metadata values can have up to 500 characters.", param)
            if item:
                merged[key] = item
            else:
                merged.pop(key, None)
        if len(merged) > 50:
            raise StripeError.invalid("Metadata can have up to 50 keys.", self.name("metadata"))
        return merged

    def expand(self) -> list[str]:
        return self.strings("expand") or []


# --------------------------------------------------------------------------------------------
# Recorded requests and other records


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, with its parameters parsed as Stripe parses them."""

    method: str
    path: str
    params: JSON
    headers: Mapping[str, str]
    status: int

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        return _header(self.headers, name)

    @property
    def idempotency_key(self) -> str | None:
        return self.header("Idempotency-Key")

    @property
    def stripe_version(self) -> str | None:
        return self.header("Stripe-Version")


@dataclass(frozen=True)
class _SavedResponse:
    method: str
    path: str
    params: JSON
    status: int
    body: JSON
    request_id: str


@dataclass(frozen=True)
class _RequestContext:
    request_id: str
    idempotency_key: str | None


@dataclass(frozen=True)
class _PriceSpec:
    """A validated price not created yet: ``price_data`` or the create-price parameters."""

    currency: str
    unit_amount: int
    recurring: JSON | None
    tax_behavior: str
    product: str | None  # an existing product, or None to create one from product_data
    product_data: JSON | None


PriceRef = str | _PriceSpec
"""A stored price's id, or a price that creating the object will create."""


@dataclass(frozen=True)
class _LineSpec:
    price: PriceRef
    quantity: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class _ItemChange:
    item_id: str | None  # None adds an item
    deleted: bool
    price: PriceRef | None
    quantity: int | None
    metadata: dict[str, str] | None


# --------------------------------------------------------------------------------------------
# Shape helpers


def _clone(value: _T) -> _T:
    """A deep copy of a JSON tree (dicts, lists, scalars), ~3x faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return cast(_T, {key: _clone(item) for key, item in value.items()})
    if isinstance(value, list):
        return cast(_T, [_clone(item) for item in value])
    return value


def _nulls(names: str) -> JSON:
    """``None`` for each space-separated field name: the fields an object carries unused."""
    return dict.fromkeys(names.split())


def _address(source: Mapping[str, Any] | None = None) -> JSON:
    source = source or {}
    return {
        key: source.get(key)
        for key in ("city", "country", "line1", "line2", "postal_code", "state")
    }


def _list_object(data: list[JSON], url: str, *, has_more: bool = False) -> JSON:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def _format_amount(amount: int, currency: str) -> str:
    """Money as Stripe writes it in descriptions (``$5.00``), without floats."""
    symbol = _CURRENCY_SYMBOLS.get(currency, f"{currency.upper()} ")
    if currency in _ZERO_DECIMAL_CURRENCIES:
        return f"{symbol}{amount}"
    major, minor = divmod(amount, 100)
    return f"{symbol}{major}.{minor:02d}"


def _add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months, clamping the day (Jan 31 + 1 month = Feb 28)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    first_of_next = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    last_day = (first_of_next - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _next_period_end(anchor: int, recurring: Mapping[str, Any], after: int) -> int:
    """The first period boundary of a subscription anchored at ``anchor`` later than ``after``.

    Boundaries are counted from the anchor, so a subscription started on the 31st renews on the
    last day of shorter months and on the 31st again when there is one, as Stripe's do.
    """
    start = datetime.fromtimestamp(anchor, tz=UTC)
    interval, count = recurring["interval"], recurring["interval_count"]
    periods = 1
    while True:
        if interval == "day":
            end = start + timedelta(days=count * periods)
        elif interval == "week":
            end = start + timedelta(weeks=count * periods)
        else:
            end = _add_months(start, count * periods * (12 if interval == "year" else 1))
        if int(end.timestamp()) > after:
            return int(end.timestamp())
        periods += 1


def _previous_attributes(before: Mapping[str, Any], after: Mapping[str, Any]) -> JSON:
    """What ``before`` held where ``after`` differs; plain hashes (metadata) diff key by key."""
    changed: JSON = {}
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and "object" not in old:
            changed[key] = _previous_attributes(old, new)
        else:
            changed[key] = _clone(old)
    return changed


def _card_details(*, declined: bool) -> JSON:
    """``payment_method_details`` of Stripe's test Visa (``4242``, or ``0002`` when declined)."""
    card = {
        "brand": "visa",
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": "FakeStripe0Visa",
        "funding": "credit",
        "incremental_authorization": {"status": "unavailable"},
        "last4": "0002" if declined else "4242",
        "multicapture": {"status": "unavailable"},
        "network": "visa",
        "network_token": {"used": False},
        "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},
        "regulated_status": "unregulated",
        **_nulls(
            "amount_authorized authorization_code capture_before description "
            "electronic_commerce_indicator iin installments issuer mandate moto "
            "network_transaction_id setup_credential_usage stored_credential_usage "
            "three_d_secure transaction_link_id wallet"
        ),
    }
    return {"card": card, "type": "card"}


def _outcome(*, declined: bool) -> JSON:
    if declined:
        return {
            "advice_code": "try_again_later",
            "network_status": "declined_by_network",
            "reason": "generic_decline",
            "risk_level": "normal",
            "risk_score": 12,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
            **_nulls("network_advice_code network_decline_code"),
        }
    return {
        "network_status": "approved_by_network",
        "risk_level": "normal",
        "risk_score": 12,
        "seller_message": "Payment complete.",
        "type": "authorized",
        **_nulls("advice_code network_advice_code network_decline_code reason"),
    }


def _plan_from_price(price: Mapping[str, Any]) -> JSON:
    """The legacy ``plan`` twin of a recurring price, which subscription items still carry."""
    recurring = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": _clone(price["metadata"]),
        "nickname": price["nickname"],
        "product": price["product"],
        "usage_type": recurring.get("usage_type", "licensed"),
        **_nulls("meter tiers_mode transform_usage trial_period_days"),
    }


def _empty_evidence() -> JSON:
    return {
        "enhanced_evidence": {},
        **_nulls(
            "access_activity_log appeal billing_address cancellation_policy "
            "cancellation_policy_disclosure cancellation_rebuttal customer_communication "
            "customer_email_address customer_name customer_purchase_ip customer_signature "
            "duplicate_charge_documentation duplicate_charge_explanation duplicate_charge_id "
            "product_description receipt refund_policy refund_policy_disclosure "
            "refund_refusal_explanation service_date service_documentation shipping_address "
            "shipping_carrier shipping_date shipping_documentation shipping_tracking_number "
            "uncategorized_file uncategorized_text"
        ),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def _invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription")
    return subscription if isinstance(subscription, str) else None


def _created_matches(obj: Mapping[str, Any], created: Any) -> bool:
    """Stripe's ``created`` list filter: an exact time or a ``gt``/``gte``/``lt``/``lte`` hash."""
    if created is None:
        return True
    if not isinstance(created, dict):
        return bool(obj["created"] == _to_int(created, "created"))
    checks: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda value, bound: value > bound,
        "gte": lambda value, bound: value >= bound,
        "lt": lambda value, bound: value < bound,
        "lte": lambda value, bound: value <= bound,
    }
    for operator, bound in created.items():
        if operator not in checks:
            raise StripeError.unknown_param(f"created[{operator}]")
        if not checks[operator](obj["created"], _to_int(bound, f"created[{operator}]")):
            return False
    return True


def _to_int(value: Any, name: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise StripeError.invalid(f"Invalid integer: {value}", name)
    return int(value)


def _paginate(items: list[JSON], p: _Params) -> tuple[list[JSON], bool]:
    """Stripe's cursor pagination over ``items`` (newest first): a page and ``has_more``."""
    limit = p.integer("limit", minimum=1) or 10
    if limit > 100:
        raise StripeError.invalid("This value must be less than or equal to 100.", "limit")
    ids = [item["id"] for item in items]
    for cursor in ("starting_after", "ending_before"):
        object_id = p.text(cursor)
        if object_id is not None and object_id not in ids:
            raise StripeError.invalid(
                f"No such object: '{object_id}'", cursor, code="resource_missing"
            )
    starting_after, ending_before = p.text("starting_after"), p.text("ending_before")
    if starting_after is not None:
        rest = items[ids.index(starting_after) + 1 :]
        return rest[:limit], len(rest) > limit
    if ending_before is not None:
        earlier = items[: ids.index(ending_before)]
        return earlier[-limit:], len(earlier) > limit
    return items[:limit], len(items) > limit


_SEARCH_CLAUSE = re.compile(
    r"(?P<field>email|name|phone|metadata\[['\"](?P<key>[^'\"]+)['\"]\])\s*"
    r"(?P<op>[:~])\s*['\"](?P<value>[^'\"]*)['\"]"
)


def _parse_search_query(query: str) -> list[Callable[[JSON], bool]]:
    """A subset of Stripe's search language: ``field:'v'`` or ``field~'v'`` joined by ``AND``."""
    clauses: list[Callable[[JSON], bool]] = []
    for text in re.split(r"\s+AND\s+", query.strip()):
        match = _SEARCH_CLAUSE.fullmatch(text.strip())
        if match is None:
            raise StripeError.invalid(
                f"FakeStripe cannot parse the search query {query!r}: it supports email, name, "
                "phone and metadata['key'] with ':' or '~', joined by AND.",
                "query",
            )

        def clause(customer: JSON, match: re.Match[str] = match) -> bool:
            key, value = match["key"], match["value"]
            actual = customer["metadata"].get(key) if key else customer.get(match["field"])
            if actual is None:
                return False
            return bool(actual == value if match["op"] == ":" else value.lower() in actual.lower())

        clauses.append(clause)
    return clauses


# --------------------------------------------------------------------------------------------
# The fake


Handler = Callable[..., JSON]


class FakeStripe:
    """An in-memory Stripe account served over HTTP on 127.0.0.1, plus Stripe's side of things.

    The HTTP API answers what the SDK asks (see the module docstring). The control methods
    simulate what happens on Stripe's side (a supporter paying on the Checkout page, a renewal,
    a declined card, a dispute) and return the events they emitted, oldest first. All state sits
    behind one lock, so the server may be called from several threads.

    :param api_key: accept only this secret key; by default any ``sk_test_...`` key.
    :param seed: seed for generated ids, for reproducible runs.
    :param latency: seconds every API call waits before it is answered, as a round trip to
        Stripe's servers would (0 by default; the benchmarks use 0.25). Calls wait side by
        side, not in turn; :attr:`latency` may be changed while the server runs.
    """

    def __init__(
        self, *, api_key: str | None = None, seed: int | None = None, latency: float = 0.0
    ) -> None:
        if latency < 0:
            raise ValueError("latency is a number of seconds, 0 or more")
        self.latency = latency
        self._api_key = api_key
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()
        self.account_id = "acct_" + self._random_string(16)
        self._reset_state()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        """Serve on a free port of 127.0.0.1 from a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("FakeStripe is already running")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-stripe",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is None:
            return
        self._server.stopped = True
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeStripe is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def api_base(self) -> str:
        """The address to give the SDK: ``base_addresses={"api": fake.api_base}``."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every object, event, request and error; the clock returns to real time."""
        with self._lock:
            self._reset_state()

    def _reset_state(self) -> None:
        self._objects: dict[str, JSON] = {}
        self._ids_by_kind: dict[str, list[str]] = {}
        self._events: list[JSON] = []
        self._events_by_id: dict[str, JSON] = {}
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._idempotent: dict[tuple[str, str], _SavedResponse] = {}
        self._subscription_items: dict[str, list[str]] = {}
        self._session_lines: dict[str, list[JSON]] = {}
        self._session_options: dict[str, JSON] = {}
        self._invoice_payments: dict[str, list[str]] = {}
        self._charge_refunds: dict[str, list[str]] = {}
        self._charge_disputes: dict[str, str] = {}
        self._declining_customers: set[str] = set()
        self._clock_offset = 0
        self._pinned_now: int | None = None
        self._context: _RequestContext | None = None

    # ---- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[JSON]:
        """Every event emitted, oldest first (copies)."""
        with self._lock:
            return _clone(self._events)

    def events_of_type(self, *types: str) -> list[JSON]:
        """The emitted events of these types (``*`` wildcards allowed), oldest first (copies)."""
        with self._lock:
            return [
                _clone(event)
                for event in self._events
                if any(fnmatch.fnmatchcase(event["type"], pattern) for pattern in types)
            ]

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected failures inside the fake (answered as 500 ``api_error``)."""
        with self._lock:
            return list(self._errors)

    def get(self, object_id: str) -> JSON:
        """An object or event as ``GET`` answers it (unexpanded), without going through HTTP.

        :raises KeyError: for an unknown id.
        """
        with self._lock:
            if object_id in self._events_by_id:
                return _clone(self._events_by_id[object_id])
            return self._render(object_id)

    def now(self) -> int:
        """The fake's clock in Unix seconds: real time plus what the clock was moved by.

        During one request or control call it stands still, so everything that call stamps
        carries the same time, as on Stripe.
        """
        pinned = self._pinned_now
        return pinned if pinned is not None else int(time.time()) + self._clock_offset

    def success_redirect_url(self, session_id: str) -> str:
        """Where Stripe sends the browser after paying: ``success_url`` with the id filled in."""
        with self._lock:
            template = self._fetch("checkout.session", session_id)["success_url"] or ""
            return str(template).replace("{CHECKOUT_SESSION_ID}", session_id)

    def webhook_request(
        self, event: Mapping[str, Any], secret: str
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of Stripe's delivery of ``event``, signed with ``secret``."""
        payload = event_payload(event)
        return payload, {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign_payload(payload, secret),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }

    # ---- Stripe's side: the control API ------------------------------------------------------

    def complete_checkout(
        self,
        session_id: str,
        *,
        outcome: Literal["paid", "declined"] = "paid",
        email: str | None = None,
        name: str | None = None,
    ) -> list[JSON]:
        """The supporter submits the Checkout page of an open session.

        Subscription mode: a customer is created unless the session named one (with the
        session's ``customer_email``, else ``email``), then the subscription (one item per line,
        status ``incomplete``) and its first invoice, which is finalized and charged. ``paid``
        makes the invoice paid and the subscription ``active``. ``declined`` leaves the invoice
        ``open``, the subscription ``incomplete`` and completes the session with
        ``payment_status="unpaid"``, as when a payment fails after the page closed;
        :meth:`pay_latest_invoice` pays it later.

        Payment mode: a payment intent and a charge. ``paid`` completes the session; ``declined``
        leaves it open with a failed charge, as the page shows the decline and lets the
        supporter try again. A customer is created only with ``customer_creation=always``.

        :raises ValueError: if the session is unknown or not open.
        """
        with self._operation():
            mark = len(self._events)
            session = self._fetch("checkout.session", session_id)
            if session["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {session['status']}, not open")
            if session["mode"] == "subscription":
                self._complete_subscription_checkout(session, outcome == "paid", email, name)
            else:
                self._complete_payment_checkout(session, outcome == "paid", email, name)
            return self._events_since(mark)

    def renew(
        self, subscription_id: str, *, outcome: Literal["paid", "failed"] = "paid"
    ) -> list[JSON]:
        """The current period ends: the clock moves to its end and the next one is invoiced.

        A trialing subscription's period is its trial: at its end comes the first real charge.

        The items' periods advance and a ``subscription_cycle`` invoice is created, finalized
        and charged. ``failed`` leaves it ``open``, makes the subscription ``past_due`` and the
        customer's card decline until :meth:`pay_latest_invoice`. A subscription set to cancel
        by the period's end ends instead. Moving the clock also expires due Checkout sessions.

        :raises ValueError: if the subscription is unknown or not live.
        """
        with self._operation():
            mark = len(self._events)
            subscription = self._fetch("subscription", subscription_id)
            if subscription["status"] not in _LIVE:
                raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
            items = self._items_of(subscription_id)
            period_start = items[0]["current_period_start"]
            period_end = items[0]["current_period_end"]
            cancel_at = subscription["cancel_at"]
            if cancel_at is not None and cancel_at <= period_end:
                self._move_clock_to(cancel_at)
                self._end_subscription(subscription, "cancellation_requested")
                return self._events_since(mark)
            self._move_clock_to(period_end)
            if outcome == "paid":
                self._declining_customers.discard(subscription["customer"])
            before = self._render(subscription_id)
            for item in items:
                recurring = self._objects[item["price"]]["recurring"]
                item["current_period_start"] = period_end
                item["current_period_end"] = _next_period_end(
                    subscription["billing_cycle_anchor"], recurring, period_end
                )
            invoice_id = self._create_invoice(
                subscription, "subscription_cycle", period_start, period_end
            )
            subscription["latest_invoice"] = invoice_id
            self._emit_update("customer.subscription.updated", subscription_id, before)
            self._emit("invoice.created", invoice_id)
            self._finalize_invoice(invoice_id)
            if self._attempt_invoice(invoice_id, succeed=outcome == "paid"):
                self._set_subscription_status(subscription_id, "active")
            else:
                self._declining_customers.add(subscription["customer"])
                self._set_subscription_status(subscription_id, "past_due")
            return self._events_since(mark)

    def pay_latest_invoice(self, subscription_id: str) -> list[JSON]:
        """The supporter fixes their card: the open latest invoice is paid; status ``active``.

        :raises ValueError: if the subscription is unknown or its latest invoice is not open.
        """
        with self._operation():
            mark = len(self._events)
            subscription = self._fetch("subscription", subscription_id)
            invoice_id = subscription["latest_invoice"]
            if invoice_id is None or self._objects[invoice_id]["status"] != "open":
                raise ValueError(f"subscription {subscription_id} has no open latest invoice")
            self._declining_customers.discard(subscription["customer"])
            self._attempt_invoice(invoice_id, succeed=True)
            if subscription["status"] in _AWAITING_PAYMENT:
                self._set_subscription_status(subscription_id, "active")
            return self._events_since(mark)

    def end_subscription(self, subscription_id: str) -> list[JSON]:
        """The subscription ends on Stripe's side: ``customer.subscription.deleted``.

        One set to cancel (``cancel_at_period_end`` or ``cancel_at``) ends at that time, the
        clock moving there; any other ends now, as when Stripe stops retrying a failed payment
        (reason ``payment_failed`` when payment is awaited, else ``cancellation_requested``).

        :raises ValueError: if the subscription is unknown or has already ended.
        """
        with self._operation():
            mark = len(self._events)
            subscription = self._fetch("subscription", subscription_id)
            if subscription["status"] in _ENDED:
                raise ValueError(f"subscription {subscription_id} has already ended")
            reason = "cancellation_requested"
            if subscription["cancel_at"] is not None:
                self._move_clock_to(subscription["cancel_at"])
            elif subscription["status"] in _AWAITING_PAYMENT:
                reason = "payment_failed"
            self._end_subscription(subscription, reason)
            return self._events_since(mark)

    def dispute(
        self,
        charge_id: str,
        *,
        reason: str = "fraudulent",
        amount: int | None = None,
        inquiry: bool = False,
    ) -> list[JSON]:
        """The cardholder's bank disputes a charge: ``charge.dispute.created``.

        A chargeback (status ``needs_response``) takes the disputed amount and Stripe's dispute
        fee out of the balance at once: a balance transaction on the dispute and
        ``charge.dispute.funds_withdrawn``; the charge can no longer be refunded. An inquiry
        (``inquiry=True``, status ``warning_needs_response``) withdraws nothing, and the charge
        stays refundable. The response is due in seven days.

        :raises ValueError: if the charge is unknown, failed or already disputed.
        """
        with self._operation():
            mark = len(self._events)
            charge = self._fetch("charge", charge_id)
            if charge["status"] != "succeeded" or charge["disputed"]:
                raise ValueError(f"charge {charge_id} cannot be disputed")
            now = self.now()
            dispute_id = self._new_id("dp_")
            self._store(
                {
                    "id": dispute_id,
                    "object": "dispute",
                    "amount": charge["amount"] if amount is None else amount,
                    "balance_transactions": [],
                    "charge": charge_id,
                    "created": now,
                    "currency": charge["currency"],
                    "enhanced_eligibility_types": [],
                    "evidence": _empty_evidence(),
                    "evidence_details": {
                        "due_by": now + 7 * _DAY,
                        "enhanced_eligibility": {},
                        "has_evidence": False,
                        "past_due": False,
                        "submission_count": 0,
                        "submission_method": "not_submitted",
                    },
                    "intended_submission_method": None,
                    "is_charge_refundable": inquiry,
                    "livemode": False,
                    "metadata": {},
                    "network_reason_code": "10.4",
                    "payment_intent": charge["payment_intent"],
                    "payment_method_details": {
                        "card": {
                            "brand": "visa",
                            "case_type": "inquiry" if inquiry else "chargeback",
                            "network": "visa",
                            "network_reason_code": "10.4",
                        },
                        "type": "card",
                    },
                    "reason": reason,
                    "status": "warning_needs_response" if inquiry else "needs_response",
                }
            )
            charge["disputed"] = True
            self._charge_disputes[charge_id] = dispute_id
            self._emit("charge.dispute.created", dispute_id)
            if not inquiry:
                self._move_dispute_funds(self._objects[dispute_id], withdraw=True)
            return self._events_since(mark)

    def resolve_dispute(self, dispute_id: str, outcome: Literal["won", "lost"]) -> list[JSON]:
        """The bank decides a dispute, whether or not evidence was submitted.

        A chargeback won: the funds come back (``charge.dispute.funds_reinstated``, the fee
        stays withdrawn) and the dispute closes ``won``; lost: it closes ``lost``. An inquiry
        won closes ``warning_closed``; lost, it becomes a chargeback: ``needs_response`` with a
        new deadline (``charge.dispute.updated``) and its funds withdrawn.

        :raises ValueError: if the dispute is unknown or already closed.
        """
        with self._operation():
            mark = len(self._events)
            dispute = self._fetch("dispute", dispute_id)
            status = dispute["status"]
            if status not in (*_DISPUTE_NEEDS_RESPONSE, *_DISPUTE_UNDER_REVIEW):
                raise ValueError(f"dispute {dispute_id} is already {status}")
            if status.startswith("warning_") and outcome == "lost":
                before = self._render(dispute_id)
                dispute.update(status="needs_response", is_charge_refundable=False)
                dispute["evidence_details"]["due_by"] = self.now() + 7 * _DAY
                dispute["payment_method_details"]["card"]["case_type"] = "chargeback"
                self._emit_update("charge.dispute.updated", dispute_id, before)
                self._move_dispute_funds(dispute, withdraw=True)
                return self._events_since(mark)
            if status.startswith("warning_"):
                dispute["status"] = "warning_closed"
            elif outcome == "won":
                self._move_dispute_funds(dispute, withdraw=False)
                dispute["status"] = "won"
            else:
                dispute["status"] = "lost"
            self._emit("charge.dispute.closed", dispute_id)
            return self._events_since(mark)

    def advance_clock(self, seconds: int) -> list[JSON]:
        """Move the fake clock forward; open Checkout sessions past ``expires_at`` expire."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._operation():
            mark = len(self._events)
            self._move_clock_to(self.now() + seconds)
            self._expire_due_sessions()  # also those that came due in real time
            return self._events_since(mark)

    # ---- HTTP plumbing ----------------------------------------------------------------------

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        """Answer one HTTP request: status, JSON body and extra response headers."""
        url = urlsplit(target)
        with self._operation():
            request_id = "req_" + self._random_string(14)
            response_headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
            params: JSON = {}
            try:
                api_key = self._authenticate(headers)
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise StripeError.invalid("The request body is not valid UTF-8.") from None
                pairs = parse_qsl(url.query, keep_blank_values=True)
                pairs += parse_qsl(text, keep_blank_values=True)
                params = parse_form(pairs)
                status, payload, extra = self._serve(
                    api_key, method, url.path, params, headers, request_id
                )
                response_headers.update(extra)
            except StripeError as error:
                status, payload = error.status, error.body()
            except Exception:  # a bug in the fake: answer like Stripe's 500, keep the trace
                self._errors.append(traceback.format_exc())
                status = 500
                payload = StripeError(
                    500, "An unexpected error occurred in FakeStripe.", error_type="api_error"
                ).body()
            if status >= 400:
                response_headers["Stripe-Should-Retry"] = "false"
            self._requests.append(RecordedRequest(method, url.path, params, dict(headers), status))
            return status, json.dumps(payload, indent=2).encode("utf-8"), response_headers

    def _serve(
        self,
        api_key: str,
        method: str,
        path: str,
        params: JSON,
        headers: Mapping[str, str],
        request_id: str,
    ) -> tuple[int, JSON, dict[str, str]]:
        version = _header(headers, "Stripe-Version")
        if version is not None and version != API_VERSION:
            raise StripeError.invalid(
                f"FakeStripe answers in API version {API_VERSION} only, not {version}."
            )
        key = _header(headers, "Idempotency-Key") if method in ("POST", "DELETE") else None
        if key is not None:
            saved = self._idempotent.get((api_key, key))
            if saved is not None:
                if (saved.method, saved.path, saved.params) != (method, path, params):
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        error_type="idempotency_error",
                    )
                replay = {
                    "Idempotency-Key": key,
                    "Idempotent-Replayed": "true",
                    "Original-Request": saved.request_id,
                }
                return saved.status, _clone(saved.body), replay
        handler, ids = self._route(method, path)
        self._context = _RequestContext(request_id, key)
        try:
            status, payload = 200, handler(_Params(params), *ids)
        except StripeError as error:
            status, payload = error.status, error.body()
        finally:
            self._context = None
        extra: dict[str, str] = {}
        if key is not None:
            extra["Idempotency-Key"] = key
            # As on Stripe, a request refused by validation is not saved, while results
            # (card declines included) are, so a retried request cannot charge twice.
            if status < 400 or status == 402:
                self._idempotent[(api_key, key)] = _SavedResponse(
                    method, path, params, status, _clone(payload), request_id
                )
        return status, payload, extra

    def _authenticate(self, headers: Mapping[str, str]) -> str:
        scheme, _, api_key = (_header(headers, "Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not api_key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        accepted = api_key == self._api_key if self._api_key else api_key.startswith("sk_test_")
        if not accepted:
            tail = api_key[-4:] if len(api_key) > 16 else ""
            shown = api_key[:8] + "*" * max(len(api_key) - 8 - len(tail), 4) + tail
            raise StripeError(401, f"Invalid API Key provided: {shown}", code="api_key_invalid")
        return api_key

    def _route(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if route_method == method and match:
                return handler, match.groups()
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        one = r"([^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/customers", self._api_create_customer),
            ("GET", "/v1/customers", self._api_list_customers),
            ("GET", "/v1/customers/search", self._api_search_customers),
            ("GET", f"/v1/customers/{one}", self._api_retrieve_customer),
            ("POST", f"/v1/customers/{one}", self._api_update_customer),
            ("DELETE", f"/v1/customers/{one}", self._api_delete_customer),
            ("POST", "/v1/products", self._api_create_product),
            ("GET", "/v1/products", self._api_list_products),
            ("GET", f"/v1/products/{one}", self._api_retrieve("product")),
            ("POST", f"/v1/products/{one}", self._api_update_product),
            ("POST", "/v1/prices", self._api_create_price),
            ("GET", "/v1/prices", self._api_list_prices),
            ("GET", f"/v1/prices/{one}", self._api_retrieve("price")),
            ("POST", f"/v1/prices/{one}", self._api_update_price),
            ("POST", "/v1/checkout/sessions", self._api_create_checkout_session),
            ("GET", "/v1/checkout/sessions", self._api_list_checkout_sessions),
            ("GET", f"/v1/checkout/sessions/{one}", self._api_retrieve("checkout.session")),
            ("GET", f"/v1/checkout/sessions/{one}/line_items", self._api_list_session_lines),
            ("POST", f"/v1/checkout/sessions/{one}/expire", self._api_expire_checkout_session),
            ("POST", "/v1/billing_portal/sessions", self._api_create_portal_session),
            ("POST", "/v1/subscriptions", self._api_create_subscription),
            ("GET", "/v1/subscriptions", self._api_list_subscriptions),
            ("GET", f"/v1/subscriptions/{one}", self._api_retrieve("subscription")),
            ("POST", f"/v1/subscriptions/{one}", self._api_update_subscription),
            ("DELETE", f"/v1/subscriptions/{one}", self._api_cancel_subscription),
            ("GET", "/v1/subscription_items", self._api_list_subscription_items),
            ("GET", f"/v1/subscription_items/{one}", self._api_retrieve("subscription_item")),
            ("GET", "/v1/invoices", self._api_list_invoices),
            ("GET", f"/v1/invoices/{one}", self._api_retrieve("invoice")),
            ("GET", f"/v1/invoices/{one}/lines", self._api_list_invoice_lines),
            ("POST", f"/v1/invoices/{one}/pay", self._api_pay_invoice),
            ("POST", "/v1/invoices", self._api_create_invoice),
            ("POST", f"/v1/invoices/{one}/finalize", self._api_finalize_invoice),
            ("POST", "/v1/invoiceitems", self._api_create_invoice_item),
            ("GET", f"/v1/invoiceitems/{one}", self._api_retrieve("invoiceitem")),
            ("GET", "/v1/invoice_payments", self._api_list_invoice_payments),
            ("GET", f"/v1/invoice_payments/{one}", self._api_retrieve("invoice_payment")),
            ("GET", "/v1/payment_intents", self._api_list_payment_intents),
            ("GET", f"/v1/payment_intents/{one}", self._api_retrieve("payment_intent")),
            ("GET", "/v1/charges", self._api_list_charges),
            ("GET", f"/v1/charges/{one}", self._api_retrieve("charge")),
            ("POST", "/v1/refunds", self._api_create_refund),
            ("GET", "/v1/refunds", self._api_list_refunds),
            ("GET", f"/v1/refunds/{one}", self._api_retrieve("refund")),
            ("GET", "/v1/disputes", self._api_list_disputes),
            ("GET", f"/v1/disputes/{one}", self._api_retrieve("dispute")),
            ("POST", f"/v1/disputes/{one}", self._api_update_dispute),
            ("POST", f"/v1/disputes/{one}/close", self._api_close_dispute),
            ("GET", "/v1/events", self._api_list_events),
            ("GET", f"/v1/events/{one}", self._api_retrieve_event),
        ]
        return [(method, re.compile(path), handler) for method, path, handler in table]

    # ---- generic reads -----------------------------------------------------------------------

    def _api_retrieve(self, kind: str) -> Handler:
        def retrieve(p: _Params, object_id: str) -> JSON:
            p.only()
            self._fetch(kind, object_id)
            return self._respond(object_id, p)

        return retrieve

    def _respond(self, object_id: str, p: _Params) -> JSON:
        return self._expand(self._render(object_id), p.expand())

    def _list(
        self,
        p: _Params,
        kind: str,
        url: str,
        keep: Callable[[JSON], bool],
        *,
        filters: tuple[str, ...] = (),
    ) -> JSON:
        """A page of ``kind`` objects, newest first, as Stripe's list endpoints answer."""
        p.only(*filters, "limit", "starting_after", "ending_before", "created")
        created = p.data.get("created")
        candidates = [
            obj
            for obj in map(self._objects.__getitem__, reversed(self._ids_by_kind.get(kind, [])))
            if not obj.get("deleted") and keep(obj) and _created_matches(obj, created)
        ]
        page, has_more = _paginate(candidates, p)
        result = _list_object([self._render(obj["id"]) for obj in page], url, has_more=has_more)
        return self._expand(result, p.expand())

    # ---- customers -------------------------------------------------------------------------

    def _api_create_customer(self, p: _Params) -> JSON:
        p.only("email", "name", "description", "phone", "metadata", "address", "preferred_locales")
        fields = self._customer_fields(p)
        customer_id = self._create_customer(
            email=fields.get("email"),
            name=fields.get("name"),
            metadata=p.metadata(),
            **{k: v for k, v in fields.items() if k not in ("email", "name")},
        )
        return self._respond(customer_id, p)

    def _customer_fields(self, p: _Params) -> JSON:
        """The customer fields present in ``p``, validated (``""`` unsets a field)."""
        fields: JSON = {}
        for key in ("email", "name", "description", "phone"):
            if p.has(key):
                fields[key] = p.text(key) or None
        address = p.nested("address")
        if address is not None:
            address.only("city", "country", "line1", "line2", "postal_code", "state")
            fields["address"] = _address(address.data)
        if p.has("preferred_locales"):
            fields["preferred_locales"] = p.strings("preferred_locales") or []
        return fields

    def _api_retrieve_customer(self, p: _Params, customer_id: str) -> JSON:
        p.only()
        customer = self._objects.get(customer_id)
        if customer is not None and customer.get("deleted"):
            return _clone(customer)
        self._fetch("customer", customer_id)
        return self._respond(customer_id, p)

    def _api_update_customer(self, p: _Params, customer_id: str) -> JSON:
        p.only("email", "name", "description", "phone", "metadata", "address", "preferred_locales")
        customer = self._fetch("customer", customer_id)
        fields = self._customer_fields(p)
        metadata = p.metadata(customer["metadata"])
        before = self._render(customer_id)
        customer.update(fields, metadata=metadata)
        self._emit_update("customer.updated", customer_id, before)
        return self._respond(customer_id, p)

    def _api_delete_customer(self, p: _Params, customer_id: str) -> JSON:
        """Delete a customer; like Stripe, its live subscriptions are canceled first."""
        p.only()
        self._fetch("customer", customer_id)
        for subscription_id in self._ids_by_kind.get("subscription", []):
            subscription = self._objects[subscription_id]
            if subscription["customer"] == customer_id and subscription["status"] not in _ENDED:
                self._end_subscription(subscription, "cancellation_requested")
        self._emit("customer.deleted", customer_id)
        tombstone = {"id": customer_id, "object": "customer", "deleted": True}
        self._objects[customer_id] = tombstone
        return _clone(tombstone)

    def _api_list_customers(self, p: _Params) -> JSON:
        email = p.text("email")
        return self._list(
            p,
            "customer",
            "/v1/customers",
            lambda customer: email is None or customer["email"] == email,
            filters=("email",),
        )

    def _api_search_customers(self, p: _Params) -> JSON:
        p.only("query", "limit", "page")
        clauses = _parse_search_query(p.required_text("query"))
        limit = p.integer("limit", minimum=1) or 10
        matches = [
            customer_id
            for customer_id in reversed(self._ids_by_kind.get("customer", []))
            if not self._objects[customer_id].get("deleted")
            and all(clause(self._objects[customer_id]) for clause in clauses)
        ]
        result = {
            "object": "search_result",
            "data": [self._render(customer_id) for customer_id in matches[:limit]],
            "has_more": len(matches) > limit,
            "next_page": None,
            "url": "/v1/customers/search",
        }
        return self._expand(result, p.expand())

    def _create_customer(
        self,
        *,
        email: str | None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        **fields: Any,
    ) -> str:
        customer_id = self._new_id("cus_", 14)
        self._store(
            {
                "id": customer_id,
                "object": "customer",
                "balance": 0,
                "created": self.now(),
                "delinquent": False,
                "email": email,
                "invoice_prefix": "".join(self._random.choices("0123456789ABCDEF", k=8)),
                "invoice_settings": _nulls(
                    "custom_fields default_payment_method footer rendering_options"
                ),
                "livemode": False,
                "metadata": metadata or {},
                "name": name,
                "next_invoice_sequence": 1,
                "preferred_locales": [],
                "tax_exempt": "none",
                **_nulls(
                    "address business_name currency customer_account default_source description "
                    "discount individual_name phone shipping test_clock"
                ),
                **fields,
            }
        )
        self._emit("customer.created", customer_id)
        return customer_id

    # ---- products and prices ---------------------------------------------------------------

    def _api_create_product(self, p: _Params) -> JSON:
        p.only(
            "id",
            "name",
            "active",
            "description",
            "metadata",
            "images",
            "statement_descriptor",
            "unit_label",
            "url",
        )
        product_id = p.text("id")
        if product_id is not None and product_id in self._objects:
            raise StripeError.invalid(
                "Product already exists.", "id", code="resource_already_exists"
            )
        name = p.required_text("name")
        fields = self._product_fields(p)
        product_id = self._create_product(name, product_id=product_id, metadata=p.metadata())
        self._objects[product_id].update(fields)
        self._emit("product.created", product_id)
        return self._respond(product_id, p)

    def _product_fields(self, p: _Params) -> JSON:
        fields: JSON = {}
        if p.has("active"):
            fields["active"] = p.boolean("active")
        for key in ("description", "statement_descriptor", "unit_label", "url"):
            if p.has(key):
                fields[key] = p.text(key) or None
        if p.has("images"):
            fields["images"] = p.strings("images") or []
        return fields

    def _api_update_product(self, p: _Params, product_id: str) -> JSON:
        p.only(
            "name",
            "active",
            "description",
            "metadata",
            "default_price",
            "images",
            "statement_descriptor",
            "unit_label",
            "url",
        )
        product = self._fetch("product", product_id)
        fields = self._product_fields(p)
        if p.has("name"):
            fields["name"] = p.required_text("name")
        if p.has("default_price"):
            price_id = p.text("default_price") or None
            if price_id is not None and (
                self._fetch("price", price_id, param="default_price")["product"] != product_id
            ):
                raise StripeError.invalid(
                    "The default price must belong to this product.", "default_price"
                )
            fields["default_price"] = price_id
        metadata = p.metadata(product["metadata"])
        before = self._render(product_id)
        product.update(fields, metadata=metadata)
        if _previous_attributes(before, self._render(product_id)):
            product["updated"] = self.now()
            self._emit_update("product.updated", product_id, before)
        return self._respond(product_id, p)

    def _api_list_products(self, p: _Params) -> JSON:
        active = p.boolean("active")
        ids = p.strings("ids")
        return self._list(
            p,
            "product",
            "/v1/products",
            lambda product: (
                (active is None or product["active"] == active)
                and (ids is None or product["id"] in ids)
            ),
            filters=("active", "ids"),
        )

    def _create_product(
        self, name: str, *, product_id: str | None = None, metadata: dict[str, str] | None = None
    ) -> str:
        """Store a product (callers emit ``product.created`` when Stripe would)."""
        now = self.now()
        product_id = product_id or self._new_id("prod_", 14)
        self._store(
            {
                "id": product_id,
                "object": "product",
                "active": True,
                "created": now,
                "images": [],
                "livemode": False,
                "marketing_features": [],
                "metadata": metadata or {},
                "name": name,
                "type": "service",
                "updated": now,
                **_nulls(
                    "default_price description package_dimensions shippable "
                    "statement_descriptor tax_code tax_details unit_label url"
                ),
            }
        )
        return product_id

    def _api_create_price(self, p: _Params) -> JSON:
        p.only(
            "currency",
            "unit_amount",
            "product",
            "product_data",
            "recurring",
            "lookup_key",
            "transfer_lookup_key",
            "metadata",
            "nickname",
            "active",
            "tax_behavior",
        )
        spec = self._price_spec(p, product_data=True)
        lookup_key = p.text("lookup_key")
        self._check_lookup_key(lookup_key, p.boolean("transfer_lookup_key") is True)
        active = p.boolean("active") is not False
        metadata = p.metadata()
        nickname = p.text("nickname")
        if lookup_key is not None:
            self._release_lookup_key(lookup_key)
        price_id = self._create_price(
            spec,
            inline=False,
            active=active,
            lookup_key=lookup_key,
            metadata=metadata,
            nickname=nickname,
        )
        return self._respond(price_id, p)

    def _api_update_price(self, p: _Params, price_id: str) -> JSON:
        p.only(
            "active", "metadata", "lookup_key", "transfer_lookup_key", "nickname", "tax_behavior"
        )
        price = self._fetch("price", price_id)
        fields: JSON = {"metadata": p.metadata(price["metadata"])}
        if p.has("lookup_key"):
            fields["lookup_key"] = p.text("lookup_key") or None
            if fields["lookup_key"] not in (None, price["lookup_key"]):
                self._check_lookup_key(
                    fields["lookup_key"], p.boolean("transfer_lookup_key") is True
                )
        if p.has("active"):
            fields["active"] = p.boolean("active")
        if p.has("nickname"):
            fields["nickname"] = p.text("nickname") or None
        if p.has("tax_behavior"):
            fields["tax_behavior"] = p.text("tax_behavior", choices=_TAX_BEHAVIORS)
        if fields.get("lookup_key") not in (None, price["lookup_key"]):
            self._release_lookup_key(fields["lookup_key"])
        before = self._render(price_id)
        price.update(fields)
        self._emit_update("price.updated", price_id, before)
        return self._respond(price_id, p)

    def _api_list_prices(self, p: _Params) -> JSON:
        lookup_keys = p.strings("lookup_keys")
        if lookup_keys is not None and len(lookup_keys) > _MAX_LOOKUP_KEYS:
            raise StripeError.invalid(
                f"Invalid array: you can specify up to {_MAX_LOOKUP_KEYS} lookup_keys, "
                f"not {len(lookup_keys)}.",
                "lookup_keys",
            )
        product = p.text("product")
        active = p.boolean("active")
        price_type = p.text("type", choices=("one_time", "recurring"))
        currency = p.text("currency")
        return self._list(
            p,
            "price",
            "/v1/prices",
            lambda price: (
                (lookup_keys is None or price["lookup_key"] in lookup_keys)
                and (product is None or price["product"] == product)
                and (active is None or price["active"] == active)
                and (price_type is None or price["type"] == price_type)
                and (currency is None or price["currency"] == currency.lower())
            ),
            filters=("lookup_keys", "product", "active", "type", "currency"),
        )

    def _check_lookup_key(self, lookup_key: str | None, transfer: bool) -> None:
        holder = self._price_with_lookup_key(lookup_key)
        if holder is not None and not transfer:
            raise StripeError.invalid(
                f"A price (`{holder}`) already uses that lookup key.", "lookup_key"
            )

    def _price_with_lookup_key(self, lookup_key: str | None) -> str | None:
        if lookup_key is None:
            return None
        return next(
            (
                price_id
                for price_id in self._ids_by_kind.get("price", [])
                if self._objects[price_id]["lookup_key"] == lookup_key
            ),
            None,
        )

    def _release_lookup_key(self, lookup_key: str) -> None:
        """Take ``lookup_key`` off the price holding it (``transfer_lookup_key=true``)."""
        holder = self._price_with_lookup_key(lookup_key)
        if holder is not None:
            before = self._render(holder)
            self._objects[holder]["lookup_key"] = None
            self._emit_update("price.updated", holder, before)

    def _price_spec(self, p: _Params, *, product_data: bool) -> _PriceSpec:
        """Validate price parameters (create-price or ``price_data``) without creating anything."""
        currency = p.required_text("currency").lower()
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise StripeError.invalid(f"Invalid currency: {currency}", p.name("currency"))
        unit_amount = p.required_integer("unit_amount", minimum=0)
        recurring: JSON | None = None
        recurring_params = p.nested("recurring")
        if recurring_params is not None:
            recurring_params.only("interval", "interval_count")
            recurring = {
                "interval": recurring_params.required_text("interval", choices=_INTERVALS),
                "interval_count": recurring_params.integer("interval_count", minimum=1) or 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        data = p.nested("product_data") if product_data else None
        product = p.text("product")
        if data is not None:
            if product is not None:
                raise StripeError.invalid(
                    "You may only specify one of these parameters: product, product_data.",
                    p.name("product_data"),
                )
            data.only("name", "description", "metadata", "images", "unit_label")
            product_fields: JSON | None = {
                "name": data.required_text("name"),
                "description": data.text("description"),
                "images": data.strings("images") or [],
                "metadata": data.metadata(),
                "unit_label": data.text("unit_label"),
            }
        elif product is None:
            raise StripeError.missing_param(p.name("product"))
        else:
            self._fetch("product", product, param=p.name("product"))
            product_fields = None
        return _PriceSpec(
            currency=currency,
            unit_amount=unit_amount,
            recurring=recurring,
            tax_behavior=p.text("tax_behavior", choices=_TAX_BEHAVIORS) or "unspecified",
            product=product,
            product_data=product_fields,
        )

    def _create_price(
        self,
        spec: _PriceSpec,
        *,
        inline: bool,
        active: bool = True,
        lookup_key: str | None = None,
        metadata: dict[str, str] | None = None,
        nickname: str | None = None,
    ) -> str:
        """Create a price (and its product, from ``product_data``).

        Inline prices (``price_data``) are archived throwaway prices: created inactive and,
        like their products, without events.
        """
        product_id = spec.product
        if product_id is None:
            assert spec.product_data is not None
            fields = dict(spec.product_data)
            product_id = self._create_product(fields.pop("name"), metadata=fields.pop("metadata"))
            self._objects[product_id].update(fields)
            if not inline:
                self._emit("product.created", product_id)
        price_id = self._new_id("price_")
        self._store(
            {
                "id": price_id,
                "object": "price",
                "active": active and not inline,
                "billing_scheme": "per_unit",
                "created": self.now(),
                "currency": spec.currency,
                "livemode": False,
                "lookup_key": lookup_key,
                "metadata": metadata or {},
                "nickname": nickname,
                "product": product_id,
                "recurring": spec.recurring,
                "tax_behavior": spec.tax_behavior,
                "type": "one_time" if spec.recurring is None else "recurring",
                "unit_amount": spec.unit_amount,
                "unit_amount_decimal": str(spec.unit_amount),
                **_nulls("custom_unit_amount tiers_mode transform_quantity"),
            }
        )
        if not inline:
            self._emit("price.created", price_id)
        return price_id

    def _price_terms(self, price: PriceRef) -> tuple[str, tuple[str, int] | None]:
        """Currency and ``(interval, interval_count)`` of a stored or specified price."""
        if isinstance(price, _PriceSpec):
            currency, recurring = price.currency, price.recurring
        else:
            currency, recurring = (
                self._objects[price]["currency"],
                self._objects[price]["recurring"],
            )
        return currency, (recurring["interval"], recurring["interval_count"]) if recurring else None

    def _price_id(self, price: PriceRef) -> str:
        """The id of a stored price, creating a specified (inline) one."""
        return price if isinstance(price, str) else self._create_price(price, inline=True)

    def _active_price(self, p: _Params, key: str = "price") -> str:
        price_id = p.required_text(key)
        if not self._fetch("price", price_id, param=p.name(key))["active"]:
            raise StripeError.invalid(
                "The price specified is inactive. This field only accepts active prices.",
                p.name(key),
            )
        return price_id

    # ---- checkout sessions -----------------------------------------------------------------

    def _api_create_checkout_session(self, p: _Params) -> JSON:
        p.only(
            "mode",
            "line_items",
            "customer",
            "customer_email",
            "customer_creation",
            "client_reference_id",
            "metadata",
            "subscription_data",
            "payment_intent_data",
            "success_url",
            "cancel_url",
            "allow_promotion_codes",
            "billing_address_collection",
            "locale",
            "submit_type",
            "expires_at",
            "ui_mode",
            "payment_method_types",
        )
        p.text("ui_mode", choices=("hosted_page",))
        customer_id = p.text("customer")
        customer_email = p.text("customer_email")
        if customer_id is not None and customer_email is not None:
            raise StripeError.invalid(
                "You may only specify one of these parameters: customer, customer_email.",
                "customer_email",
            )
        if customer_id is not None:
            self._fetch("customer", customer_id, param="customer")
        for url_param in ("success_url", "cancel_url"):
            url = p.text(url_param)
            if url is not None and not re.match(r"https?://", url):
                raise StripeError.invalid("Not a valid URL", url_param, code="url_invalid")
        lines = [self._line_spec(line) for line in p.nested_list("line_items")]
        if not lines:
            raise StripeError.missing_param("line_items")
        terms = [self._price_terms(line.price) for line in lines]
        recurring = any(interval for _, interval in terms)
        mode = p.text("mode", choices=("payment", "subscription"))
        mode = mode or ("subscription" if recurring else "payment")
        if mode == "subscription" and not recurring:
            raise StripeError.invalid(
                "You must provide at least one recurring price in `subscription` mode when "
                "using prices.",
                "line_items",
            )
        if mode == "payment" and recurring:
            raise StripeError.invalid(
                "You specified `payment` mode but passed a recurring price. Either switch to "
                "`subscription` mode or use only one-time prices.",
                "line_items",
            )
        if len({currency for currency, _ in terms}) > 1 or len({i for _, i in terms if i}) > 1:
            raise StripeError.invalid(
                "All line items must share one currency and one billing interval.", "line_items"
            )
        now = self.now()
        expires_at = p.integer("expires_at") or now + _CHECKOUT_LIFETIME
        if not now + 30 * 60 <= expires_at <= now + _CHECKOUT_LIFETIME:
            raise StripeError.invalid(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
                "Checkout Session creation.",
                "expires_at",
            )
        customer_creation = p.text("customer_creation", choices=("always", "if_required"))
        if mode == "subscription" and customer_creation is not None:
            raise StripeError.invalid(
                "`customer_creation` can only be used in `payment` and `setup` mode.",
                "customer_creation",
            )
        options = self._session_mode_options(p, mode)
        fields = {
            "allow_promotion_codes": p.boolean("allow_promotion_codes"),
            "billing_address_collection": p.text(
                "billing_address_collection", choices=("auto", "required")
            ),
            "cancel_url": p.text("cancel_url"),
            "client_reference_id": p.text("client_reference_id"),
            "customer": customer_id,
            "customer_creation": (customer_creation or "if_required")
            if mode == "payment"
            else None,
            "customer_email": customer_email,
            "expires_at": expires_at,
            "locale": p.text("locale"),
            "metadata": p.metadata(),
            "mode": mode,
            "payment_method_types": p.strings("payment_method_types") or ["card"],
            "submit_type": p.text(
                "submit_type", choices=("auto", "book", "donate", "pay", "subscribe")
            ),
            "success_url": p.text("success_url"),
        }
        session_id = self._create_session(lines, fields)
        self._session_options[session_id] = options
        if options["trial_end"] is not None:
            # What is due today: nothing until the trial ends.
            self._objects[session_id].update(amount_subtotal=0, amount_total=0)
        return self._respond(session_id, p)

    def _line_spec(self, line: _Params) -> _LineSpec:
        line.only("price", "price_data", "quantity", "metadata")
        price_data = line.nested("price_data")
        if line.has("price") == (price_data is not None):
            raise StripeError.invalid(
                f"You must specify either `price` or `price_data` in `{line.path}`.",
                line.name("price"),
            )
        price: PriceRef
        if price_data is not None:
            price_data.only(
                "currency", "unit_amount", "product", "product_data", "recurring", "tax_behavior"
            )
            price = self._price_spec(price_data, product_data=True)
        else:
            price = self._active_price(line)
        quantity = line.integer("quantity", minimum=1)
        if quantity is None:
            raise StripeError.invalid(
                f"Quantity is required. Add `quantity` to `{line.path}`", line.name("quantity")
            )
        return _LineSpec(price, quantity, line.metadata())

    def _session_mode_options(self, p: _Params, mode: str) -> JSON:
        """What a session keeps for completion: ``subscription_data``/``payment_intent_data``."""
        options: JSON = {
            "subscription_metadata": {},
            "trial_end": None,
            "subscription_description": None,
            "intent_metadata": {},
            "intent_description": None,
            "setup_future_usage": None,
        }
        subscription_data = p.nested("subscription_data")
        if subscription_data is not None:
            if mode != "subscription":
                raise StripeError.invalid(
                    "You can only specify `subscription_data` in `subscription` mode.",
                    "subscription_data",
                )
            subscription_data.only("metadata", "description", "trial_end")
            options["subscription_metadata"] = subscription_data.metadata()
            options["trial_end"] = self._checkout_trial_end(subscription_data)
            options["subscription_description"] = subscription_data.text("description")
        intent_data = p.nested("payment_intent_data")
        if intent_data is not None:
            if mode != "payment":
                raise StripeError.invalid(
                    "You can only specify `payment_intent_data` in `payment` mode.",
                    "payment_intent_data",
                )
            intent_data.only("metadata", "description", "setup_future_usage")
            options["intent_metadata"] = intent_data.metadata()
            options["intent_description"] = intent_data.text("description")
            options["setup_future_usage"] = intent_data.text(
                "setup_future_usage", choices=("off_session", "on_session")
            )
        return options

    def _checkout_trial_end(self, subscription_data: _Params) -> int | None:
        """``subscription_data[trial_end]``, refused as Checkout refuses it: sooner than 48 hours
        from now, or more than 730 days ahead."""
        trial_end = subscription_data.integer("trial_end")
        if trial_end is None:
            return None
        now = self.now()
        if trial_end < now + _MIN_CHECKOUT_TRIAL:
            raise StripeError.invalid(
                "The `trial_end` date has to be at least 2 days in the future.",
                subscription_data.name("trial_end"),
            )
        if trial_end > now + _MAX_TRIAL:
            raise StripeError.invalid(
                "The maximum number of trial period days is 730 (2 years).",
                subscription_data.name("trial_end"),
            )
        return trial_end

    def _create_session(self, lines: list[_LineSpec], fields: JSON) -> str:
        session_id = "cs_test_a1" + self._random_string(56)
        stored_lines = []
        for line in lines:
            price = self._objects[self._price_id(line.price)]
            amount = price["unit_amount"] * line.quantity
            stored_lines.append(
                {
                    "id": self._new_id("li_"),
                    "object": "item",
                    "adjustable_quantity": None,
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": price["currency"],
                    "description": self._objects[price["product"]]["name"],
                    "metadata": line.metadata,
                    "price": price["id"],  # rendered as the full price
                    "quantity": line.quantity,
                }
            )
        self._session_lines[session_id] = stored_lines
        total = sum(line["amount_total"] for line in stored_lines)
        payment_mode = fields["mode"] == "payment"
        self._store(
            {
                "id": session_id,
                "object": "checkout.session",
                "adaptive_pricing": {"enabled": False},
                "amount_subtotal": total,
                "amount_total": total,
                "automatic_tax": {"enabled": False, **_nulls("liability provider status")},
                "created": self.now(),
                "currency": stored_lines[0]["currency"],
                "custom_fields": [],
                "custom_text": _nulls(
                    "after_submit shipping_address submit terms_of_service_acceptance"
                ),
                "discounts": [],
                "invoice_creation": {
                    "enabled": False,
                    "invoice_data": {
                        "metadata": {},
                        **_nulls(
                            "account_tax_ids custom_fields description footer issuer "
                            "rendering_options"
                        ),
                    },
                }
                if payment_mode
                else None,
                "livemode": False,
                "payment_method_collection": "if_required" if payment_mode else "always",
                "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
                "payment_status": "unpaid",
                "phone_number_collection": {"enabled": False},
                "saved_payment_method_options": {
                    "allow_redisplay_filters": ["always"],
                    "payment_method_remove": None,
                    "payment_method_save": None,
                },
                "shipping_options": [],
                "status": "open",
                "tax_id_collection": {"enabled": False, "required": "never"},
                "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
                "ui_mode": "hosted_page",
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                **_nulls(
                    "after_expiration allowed_payment_method_types branding_settings "
                    "client_secret collected_information consent consent_collection "
                    "currency_conversion customer_account customer_details "
                    "excluded_payment_method_types integration_identifier invoice "
                    "managed_payments name_collection optional_items origin_context "
                    "payment_intent payment_link payment_method_configuration_details "
                    "permissions presentment_details recovered_from redirect_on_completion "
                    "return_url setup_intent shipping_address_collection shipping_cost "
                    "subscription wallet_options"
                ),
                **fields,
            }
        )
        return session_id

    def _api_list_checkout_sessions(self, p: _Params) -> JSON:
        customer = p.text("customer")
        status = p.text("status", choices=("open", "complete", "expired"))
        subscription = p.text("subscription")
        payment_intent = p.text("payment_intent")
        return self._list(
            p,
            "checkout.session",
            "/v1/checkout/sessions",
            lambda s: (
                (customer is None or s["customer"] == customer)
                and (status is None or s["status"] == status)
                and (subscription is None or s["subscription"] == subscription)
                and (payment_intent is None or s["payment_intent"] == payment_intent)
            ),
            filters=("customer", "status", "subscription", "payment_intent"),
        )

    def _api_list_session_lines(self, p: _Params, session_id: str) -> JSON:
        p.only("limit", "starting_after", "ending_before")
        self._fetch("checkout.session", session_id)
        page, has_more = _paginate(self._render_session_lines(session_id), p)
        url = f"/v1/checkout/sessions/{session_id}/line_items"
        return self._expand(_list_object(page, url, has_more=has_more), p.expand())

    def _api_expire_checkout_session(self, p: _Params, session_id: str) -> JSON:
        p.only()
        session = self._fetch("checkout.session", session_id)
        if session["status"] != "open":
            raise StripeError.invalid(
                'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{session["status"]}".',
            )
        self._expire_session(session)
        return self._respond(session_id, p)

    def _expire_session(self, session: JSON) -> None:
        session.update(status="expired", url=None)
        self._emit("checkout.session.expired", session["id"])

    def _expire_due_sessions(self) -> None:
        now = self.now()
        for session_id in self._ids_by_kind.get("checkout.session", []):
            session = self._objects[session_id]
            if session["status"] == "open" and session["expires_at"] <= now:
                self._expire_session(session)

    def _complete_subscription_checkout(
        self, session: JSON, paid: bool, email: str | None, name: str | None
    ) -> None:
        options = self._session_options[session["id"]]
        trial_end = options["trial_end"]
        if trial_end is not None and not paid:
            # The page saves the card for later and refuses a declined one: nothing is made.
            return
        customer_id = session["customer"] or self._create_customer(
            email=session["customer_email"] or email or self._placeholder_email(), name=name
        )
        subscription = self._create_subscription(
            customer_id,
            currency=session["currency"],
            lines=[
                (line["price"], line["quantity"], {}) for line in self._session_lines[session["id"]]
            ],
            metadata=dict(options["subscription_metadata"]),
            description=options["subscription_description"],
            trial_end=trial_end,
        )
        invoice_id = self._start_billing(subscription)
        succeeded = self._attempt_invoice(invoice_id, succeed=paid)
        if succeeded and trial_end is None:
            self._set_subscription_status(subscription["id"], "active")
        if trial_end is not None:
            payment_status = "no_payment_required"
        else:
            payment_status = "paid" if succeeded else "unpaid"
        self._finish_session(
            session,
            customer_id,
            payment_status,
            subscription=subscription["id"],
            invoice=invoice_id,
        )

    def _create_subscription(
        self,
        customer_id: str,
        *,
        currency: str,
        lines: list[tuple[str, int, dict[str, str]]],
        metadata: dict[str, str],
        description: str | None,
        trial_end: int | None = None,
    ) -> JSON:
        """An ``incomplete`` subscription with one item per ``(price, quantity, metadata)``;
        with ``trial_end``, a ``trialing`` one whose first period (the trial) ends then."""
        customer = self._fetch("customer", customer_id, param="customer")
        if customer["currency"] is None:
            customer["currency"] = currency
        now = self.now()
        subscription_id = self._new_id("sub_")
        self._subscription_items[subscription_id] = []
        subscription: JSON = {
            "id": subscription_id,
            "object": "subscription",
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": now,
            "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
            "billing_schedules": [],
            "cancel_at_period_end": False,
            "cancellation_details": _nulls("comment feedback feedback_option reason"),
            "collection_method": "charge_automatically",
            "created": now,
            "currency": currency,
            "customer": customer_id,
            "default_payment_method": self._new_id("pm_"),
            "default_tax_rates": [],
            "description": description,
            "discounts": [],
            "invoice_settings": {
                "issuer": {"type": "self"},
                **_nulls("account_tax_ids custom_fields description footer"),
            },
            "livemode": False,
            "metadata": metadata,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "start_date": now,
            "status": "incomplete" if trial_end is None else "trialing",
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            **_nulls(
                "application application_fee_percent billing_cycle_anchor_config "
                "billing_thresholds cancel_at canceled_at customer_account days_until_due "
                "default_source ended_at latest_invoice managed_payments "
                "next_pending_invoice_item_invoice on_behalf_of pause_collection "
                "pending_invoice_item_interval pending_setup_intent pending_update "
                "presentment_details schedule status_details test_clock transfer_data "
                "trial_end trial_start"
            ),
        }
        if trial_end is not None:
            subscription.update(
                billing_cycle_anchor=trial_end, trial_start=now, trial_end=trial_end
            )
        self._store(subscription)
        for price_id, quantity, item_metadata in lines:
            self._add_item(subscription, price_id, quantity, item_metadata)
        return subscription

    def _start_billing(self, subscription: JSON) -> str:
        """Announce a new subscription and finalize its first invoice (charged by the caller)."""
        created = subscription["created"]
        invoice_id = self._create_invoice(subscription, "subscription_create", created, created)
        subscription["latest_invoice"] = invoice_id
        self._emit("customer.subscription.created", subscription["id"])
        self._emit("invoice.created", invoice_id)
        self._finalize_invoice(invoice_id)
        return invoice_id

    def _complete_payment_checkout(
        self, session: JSON, paid: bool, email: str | None, name: str | None
    ) -> None:
        options = self._session_options[session["id"]]
        customer_id = session["customer"]
        email = session["customer_email"] or email or self._placeholder_email()
        if customer_id is None and session["customer_creation"] == "always" and paid:
            customer_id = self._create_customer(email=email, name=name)
        intent_id = session["payment_intent"]
        if intent_id is None:
            intent_id = self._create_payment_intent(
                customer=customer_id,
                amount=session["amount_total"],
                currency=session["currency"],
                description=options["intent_description"],
                metadata=dict(options["intent_metadata"]),
                setup_future_usage=options["setup_future_usage"],
                payment_method=self._new_id("pm_"),
            )
            session["payment_intent"] = intent_id
        elif customer_id is not None:
            self._objects[intent_id]["customer"] = customer_id
        if self._charge_intent(intent_id, succeed=paid, receipt_email=email):
            self._finish_session(session, customer_id, "paid", email=email, name=name)

    def _finish_session(
        self,
        session: JSON,
        customer_id: str | None,
        payment_status: str,
        *,
        subscription: str | None = None,
        invoice: str | None = None,
        email: str | None = None,
        name: str | None = None,
    ) -> None:
        customer = self._objects[customer_id] if customer_id else {}
        session.update(
            status="complete",
            payment_status=payment_status,
            customer=customer_id,
            subscription=subscription,
            invoice=invoice,
            url=None,
            customer_details={
                "address": _address(customer.get("address")),
                "email": customer.get("email") or email,
                "name": customer.get("name") or name,
                "phone": customer.get("phone"),
                "tax_exempt": "none",
                "tax_ids": [],
                **_nulls("business_name individual_name"),
            },
            collected_information=_nulls("business_name individual_name shipping_details"),
        )
        self._emit("checkout.session.completed", session["id"])

    def _placeholder_email(self) -> str:
        return f"supporter-{self._random_string(8).lower()}@example.com"

    # ---- billing portal --------------------------------------------------------------------

    def _api_create_portal_session(self, p: _Params) -> JSON:
        p.only("customer", "return_url", "configuration", "locale")
        customer_id = p.required_text("customer")
        self._fetch("customer", customer_id, param="customer")
        session_id = self._new_id("bps_")
        self._store(
            {
                "id": session_id,
                "object": "billing_portal.session",
                "configuration": p.text("configuration") or "bpc_FakeStripeDefaultConfig0",
                "created": self.now(),
                "customer": customer_id,
                "livemode": False,
                "locale": p.text("locale"),
                "return_url": p.text("return_url"),
                "url": f"https://billing.stripe.com/p/session/test_{self._random_string(48)}",
                **_nulls("after_expiration customer_account flow on_behalf_of"),
            }
        )
        return self._respond(session_id, p)

    # ---- subscriptions -------------------------------------------------------------------------

    def _api_list_subscriptions(self, p: _Params) -> JSON:
        customer = p.text("customer")
        price = p.text("price")
        status = p.text("status", choices=(*_SUBSCRIPTION_STATUSES, "all", "ended"))

        def keep(subscription: JSON) -> bool:
            if customer is not None and subscription["customer"] != customer:
                return False
            prices = [item["price"] for item in self._items_of(subscription["id"])]
            if price is not None and price not in prices:
                return False
            if status is None:  # Stripe's default: everything not canceled
                return subscription["status"] not in _ENDED
            if status == "ended":
                return subscription["status"] in _ENDED
            return status == "all" or subscription["status"] == status

        return self._list(
            p, "subscription", "/v1/subscriptions", keep, filters=("customer", "price", "status")
        )

    def _api_create_subscription(self, p: _Params) -> JSON:
        """Create a subscription directly, as the Dashboard or another integration does.

        The first invoice is charged at once to the customer's card (the fake's test card, which
        declines for a customer whose renewal failed), as ``payment_behavior=allow_incomplete``
        does: paid makes the subscription ``active``, declined leaves it ``incomplete`` with the
        invoice open. ``default_incomplete`` leaves the first invoice open, not attempted.
        """
        p.only("customer", "items", "metadata", "description", "payment_behavior")
        customer_id = p.required_text("customer")
        self._fetch("customer", customer_id, param="customer")
        behavior = p.text("payment_behavior", choices=("allow_incomplete", "default_incomplete"))
        items = p.nested_list("items")
        if not items:
            raise StripeError.missing_param("items")
        specs = [self._new_item(item) for item in items]
        terms = {self._price_terms(price) for price, _, _ in specs}
        if any(interval is None for _, interval in terms):
            raise StripeError.invalid(
                "The price specified is set to `type=one_time` but this field only accepts "
                "prices with `type=recurring`.",
                "items",
            )
        if len(terms) > 1:
            raise StripeError.invalid(
                "Currency and interval fields must match across all plans on this subscription.",
                "items",
            )
        metadata, description = p.metadata(), p.text("description")
        ((currency, _),) = terms
        lines = [(self._price_id(price), quantity, meta) for price, quantity, meta in specs]
        subscription = self._create_subscription(
            customer_id, currency=currency, lines=lines, metadata=metadata, description=description
        )
        invoice_id = self._start_billing(subscription)
        if behavior != "default_incomplete":
            paid = customer_id not in self._declining_customers
            if self._attempt_invoice(invoice_id, succeed=paid):
                self._set_subscription_status(subscription["id"], "active")
        return self._respond(subscription["id"], p)

    def _new_item(self, item: _Params) -> tuple[PriceRef, int, dict[str, str]]:
        """An item of a new subscription: its price (stored or inline), quantity and metadata."""
        item.only("price", "price_data", "quantity", "metadata")
        price_data = item.nested("price_data")
        if item.has("price") == (price_data is not None):
            raise StripeError.invalid(
                f"You must specify either `price` or `price_data` in `{item.path}`.",
                item.name("price"),
            )
        price: PriceRef
        if price_data is not None:
            price_data.only("currency", "unit_amount", "product", "recurring", "tax_behavior")
            price_data.nested("recurring", required=True)
            price = self._price_spec(price_data, product_data=False)
        else:
            price = self._active_price(item)
        return price, item.integer("quantity", minimum=1) or 1, item.metadata()

    def _api_list_subscription_items(self, p: _Params) -> JSON:
        subscription_id = p.required_text("subscription")
        self._fetch("subscription", subscription_id, param="subscription")
        item_ids = self._subscription_items[subscription_id]
        return self._list(
            p,
            "subscription_item",
            f"/v1/subscription_items?subscription={subscription_id}",
            lambda item: item["id"] in item_ids,
            filters=("subscription",),
        )

    def _api_update_subscription(self, p: _Params, subscription_id: str) -> JSON:
        p.only(
            "items",
            "proration_behavior",
            "proration_date",
            "cancel_at_period_end",
            "cancel_at",
            "cancellation_details",
            "metadata",
            "description",
        )
        subscription = self._fetch("subscription", subscription_id)
        if subscription["status"] in _ENDED:
            others = sorted(set(p.data) - {"cancellation_details", "metadata", "expand"})
            if others:
                raise StripeError.invalid(
                    "A canceled subscription can only update its cancellation_details and "
                    "metadata.",
                    others[0],
                )
        # Validated, but the fake creates no prorations (see the module's limitations).
        p.text("proration_behavior", choices=("always_invoice", "create_prorations", "none"))
        p.integer("proration_date")
        changes = [self._item_change(subscription, change) for change in p.nested_list("items")]
        interval_changes = self._check_item_changes(subscription, changes)
        fields: JSON = {"metadata": p.metadata(subscription["metadata"])}
        if p.has("description"):
            fields["description"] = p.text("description") or None
        fields.update(self._cancellation_fields(subscription, p))
        before = self._render(subscription_id)
        self._apply_item_changes(subscription, changes)
        subscription.update(fields)
        if interval_changes:
            self._restart_billing_cycle(subscription)
            invoice_id = self._create_invoice(
                subscription, "subscription_update", self.now(), self.now()
            )
            subscription["latest_invoice"] = invoice_id
        self._emit_update("customer.subscription.updated", subscription_id, before)
        if interval_changes:
            self._emit("invoice.created", invoice_id)
            self._finalize_invoice(invoice_id)
            paid = subscription["customer"] not in self._declining_customers
            if not self._attempt_invoice(invoice_id, succeed=paid):
                self._set_subscription_status(subscription_id, "past_due")
        return self._respond(subscription_id, p)

    def _cancellation_fields(self, subscription: JSON, p: _Params) -> JSON:
        """The cancellation fields an update sets: ``cancel_at*`` and ``cancellation_details``."""
        fields: JSON = {}
        now = self.now()
        period_end = self._items_of(subscription["id"])[0]["current_period_end"]
        at_period_end = p.boolean("cancel_at_period_end")
        if at_period_end is not None and p.has("cancel_at"):
            raise StripeError.invalid(
                "You may only specify one of these parameters: cancel_at, cancel_at_period_end.",
                "cancel_at",
            )
        if at_period_end is True:
            fields.update(cancel_at_period_end=True, cancel_at=period_end, canceled_at=now)
        elif at_period_end is False:
            fields.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
        elif p.has("cancel_at"):
            cancel_at = p.text("cancel_at")
            if cancel_at == "":
                fields.update(cancel_at=None, canceled_at=None)
            elif cancel_at in ("min_period_end", "max_period_end"):
                fields.update(cancel_at=period_end, canceled_at=now)
            else:
                fields.update(cancel_at=p.integer("cancel_at", minimum=now), canceled_at=now)
            fields["cancel_at_period_end"] = False
        details = p.nested("cancellation_details")
        if details is not None:
            details.only("comment", "feedback")
            merged = dict(subscription["cancellation_details"])
            if details.has("comment"):
                merged["comment"] = details.text("comment") or None
            if details.has("feedback"):
                merged["feedback"] = details.text("feedback", choices=("", *_FEEDBACK)) or None
            fields["cancellation_details"] = merged
        return fields

    def _item_change(self, subscription: JSON, change: _Params) -> _ItemChange:
        change.only("id", "price", "price_data", "quantity", "deleted", "metadata")
        item_id = change.text("id")
        if item_id is not None and item_id not in self._subscription_items[subscription["id"]]:
            raise StripeError.invalid(
                f"Invalid subscription item: {item_id} is not an item of {subscription['id']}.",
                change.name("id"),
            )
        deleted = change.boolean("deleted") is True
        if deleted and item_id is None:
            raise StripeError.missing_param(change.name("id"))
        price: PriceRef | None = None
        price_data = change.nested("price_data")
        if price_data is not None:
            if change.has("price"):
                raise StripeError.invalid(
                    "You may only specify one of these parameters: price, price_data.",
                    change.name("price_data"),
                )
            price_data.only("currency", "unit_amount", "product", "recurring", "tax_behavior")
            price_data.nested("recurring", required=True)
            price = self._price_spec(price_data, product_data=False)
        elif change.has("price"):
            price = self._active_price(change)
        if item_id is None and price is None:
            raise StripeError.missing_param(change.name("price"))
        current = self._objects[item_id]["metadata"] if item_id else {}
        return _ItemChange(
            item_id=item_id,
            deleted=deleted,
            price=price,
            quantity=change.integer("quantity", minimum=1),
            metadata=change.metadata(current) if change.has("metadata") else None,
        )

    def _check_item_changes(self, subscription: JSON, changes: list[_ItemChange]) -> bool:
        """Check the items the subscription would have; True if its billing interval changes."""
        prices: dict[str | int, PriceRef] = {
            item["id"]: item["price"] for item in self._items_of(subscription["id"])
        }
        current = self._price_terms(next(iter(prices.values())))[1]
        for index, change in enumerate(changes):
            if change.deleted:
                prices.pop(change.item_id or "", None)
            elif change.price is not None:
                prices[change.item_id or index] = change.price
        if not prices:
            raise StripeError.invalid("A subscription must keep at least one item.", "items")
        terms = {self._price_terms(price) for price in prices.values()}
        if any(interval is None for _, interval in terms):
            raise StripeError.invalid(
                "The price specified is set to `type=one_time` but this field only accepts "
                "prices with `type=recurring`.",
                "items",
            )
        if len(terms) > 1 or next(iter(terms))[0] != subscription["currency"]:
            raise StripeError.invalid(
                "Currency and interval fields must match across all plans on this subscription.",
                "items",
            )
        return next(iter(terms))[1] != current

    def _apply_item_changes(self, subscription: JSON, changes: list[_ItemChange]) -> None:
        item_ids = self._subscription_items[subscription["id"]]
        for change in changes:
            if change.deleted:
                assert change.item_id is not None
                item_ids.remove(change.item_id)
                continue
            price_id = self._price_id(change.price) if change.price is not None else None
            if change.item_id is None:
                assert price_id is not None
                self._add_item(subscription, price_id, change.quantity or 1, change.metadata or {})
                continue
            item = self._objects[change.item_id]
            if price_id is not None:
                item["price"] = price_id
            if change.quantity is not None:
                item["quantity"] = change.quantity
            if change.metadata is not None:
                item["metadata"] = change.metadata

    def _add_item(
        self, subscription: JSON, price_id: str, quantity: int, metadata: dict[str, str]
    ) -> str:
        """Add an item billed on the subscription's current period (or a first one from now)."""
        items = self._items_of(subscription["id"])
        anchor = subscription["billing_cycle_anchor"]
        trial_end = subscription["trial_end"]
        if items:
            start, end = items[0]["current_period_start"], items[0]["current_period_end"]
        elif trial_end is not None and trial_end > subscription["created"]:
            start, end = subscription["created"], trial_end  # the trial is the first period
        else:
            start = anchor
            end = _next_period_end(anchor, self._objects[price_id]["recurring"], anchor)
        item_id = self._new_id("si_", 14)
        self._store(
            {
                "id": item_id,
                "object": "subscription_item",
                "created": self.now(),
                "current_period_end": end,
                "current_period_start": start,
                "discounts": [],
                "metadata": metadata,
                "price": price_id,  # rendered as the full price, with its plan
                "quantity": quantity,
                "subscription": subscription["id"],
                "tax_rates": [],
                **_nulls("billed_until billing_thresholds current_trial"),
            }
        )
        self._subscription_items[subscription["id"]].append(item_id)
        return item_id

    def _restart_billing_cycle(self, subscription: JSON) -> None:
        """A new billing interval starts a new period now, as Stripe does on such a switch."""
        now = self.now()
        subscription["billing_cycle_anchor"] = now
        for item in self._items_of(subscription["id"]):
            recurring = self._objects[item["price"]]["recurring"]
            item["current_period_start"] = now
            item["current_period_end"] = _next_period_end(now, recurring, now)

    def _api_cancel_subscription(self, p: _Params, subscription_id: str) -> JSON:
        p.only("cancellation_details", "invoice_now", "prorate")
        subscription = self._fetch("subscription", subscription_id)
        if subscription["status"] in _ENDED:
            raise StripeError.invalid(
                f"This subscription has already been canceled: {subscription_id}."
            )
        p.boolean("invoice_now")  # validated; no final invoice is made (no prorations)
        p.boolean("prorate")
        fields = self._cancellation_fields(subscription, p)  # cancellation_details only
        subscription.update(fields, cancel_at=None, canceled_at=None)
        self._end_subscription(subscription, "cancellation_requested")
        self._stop_collecting(subscription["customer"])
        return self._respond(subscription_id, p)

    def _stop_collecting(self, customer_id: str) -> None:
        """Stripe's default on cancelling: no more automatic attempts on the customer's open
        invoices (they stay open, and may still be paid by hand)."""
        for invoice_id in self._ids_by_kind.get("invoice", []):
            invoice = self._objects[invoice_id]
            if invoice["customer"] == customer_id and invoice["status"] == "open":
                before = self._render(invoice_id)
                invoice.update(auto_advance=False, next_payment_attempt=None)
                self._emit_update("invoice.updated", invoice_id, before)

    def _end_subscription(self, subscription: JSON, reason: str) -> None:
        now = self.now()
        subscription.update(
            status="canceled",
            ended_at=now,
            canceled_at=subscription["canceled_at"] or now,
            cancel_at_period_end=False,
        )
        subscription["cancellation_details"]["reason"] = reason
        self._emit("customer.subscription.deleted", subscription["id"])

    def _set_subscription_status(self, subscription_id: str, status: str) -> None:
        subscription = self._objects[subscription_id]
        if subscription["status"] != status:
            before = self._render(subscription_id)
            subscription["status"] = status
            self._emit_update("customer.subscription.updated", subscription_id, before)

    def _items_of(self, subscription_id: str) -> list[JSON]:
        return [self._objects[item_id] for item_id in self._subscription_items[subscription_id]]

    # ---- invoices and payments ---------------------------------------------------------------

    def _api_list_invoices(self, p: _Params) -> JSON:
        customer = p.text("customer")
        subscription = p.text("subscription")
        status = p.text("status", choices=("draft", "open", "paid", "uncollectible", "void"))
        return self._list(
            p,
            "invoice",
            "/v1/invoices",
            lambda invoice: (
                (customer is None or invoice["customer"] == customer)
                and (subscription is None or _invoice_subscription(invoice) == subscription)
                and (status is None or invoice["status"] == status)
            ),
            filters=("customer", "subscription", "status"),
        )

    def _api_list_invoice_lines(self, p: _Params, invoice_id: str) -> JSON:
        p.only("limit", "starting_after", "ending_before")
        lines = _clone(self._fetch("invoice", invoice_id)["lines"]["data"])
        page, has_more = _paginate(lines, p)
        url = f"/v1/invoices/{invoice_id}/lines"
        return self._expand(_list_object(page, url, has_more=has_more), p.expand())

    def _api_pay_invoice(self, p: _Params, invoice_id: str) -> JSON:
        """Pay an open invoice now with the customer's card (which may decline: 402)."""
        p.only()
        invoice = self._fetch("invoice", invoice_id)
        if invoice["status"] == "paid":
            raise StripeError.invalid("Invoice is already paid", code="invoice_already_paid")
        if invoice["status"] != "open":
            raise StripeError.invalid(
                f"You can only pay an open invoice; this one is {invoice['status']}."
            )
        if (
            invoice["amount_due"] > 0
            and self._objects[self._invoice_intent(invoice_id)]["payment_method"] is None
        ):
            raise StripeError.invalid(
                "This customer has no attached payment source or default payment method. "
                "Please consider adding a default payment method."
            )
        paid = invoice["customer"] not in self._declining_customers
        if not self._attempt_invoice(invoice_id, succeed=paid):
            raise StripeError(
                402,
                "Your card was declined.",
                error_type="card_error",
                code="card_declined",
                decline_code="generic_decline",
                charge=self._objects[self._invoice_intent(invoice_id)]["latest_charge"],
            )
        subscription_id = _invoice_subscription(invoice)
        subscription = self._objects.get(subscription_id or "")
        if (
            subscription is not None
            and subscription["latest_invoice"] == invoice_id
            and subscription["status"] in _AWAITING_PAYMENT
        ):
            self._set_subscription_status(subscription["id"], "active")
        return self._respond(invoice_id, p)

    def _api_create_invoice(self, p: _Params) -> JSON:
        """A one-off draft invoice, as the Dashboard makes one: no subscription, no parent.

        ``pending_invoice_items_behavior=include`` takes in the customer's pending invoice
        items; by default (``exclude``) items are added to the draft afterwards.
        """
        p.only(
            "customer",
            "currency",
            "description",
            "metadata",
            "auto_advance",
            "default_payment_method",
            "pending_invoice_items_behavior",
        )
        customer = self._fetch("customer", p.required_text("customer"), param="customer")
        currency = (p.text("currency") or customer["currency"] or "usd").lower()
        payment_method = p.text("default_payment_method")
        if payment_method is not None and payment_method not in self._payment_methods_of(
            customer["id"]
        ):
            raise StripeError.invalid(
                f"No such PaymentMethod: '{payment_method}'",
                "default_payment_method",
                code="resource_missing",
            )
        behavior = p.text("pending_invoice_items_behavior", choices=("exclude", "include"))
        invoice_id = self._new_id("in_")
        now = self.now()
        self._new_invoice(
            invoice_id,
            customer,
            currency=currency,
            billing_reason="manual",
            period=(now, now),
            parent=None,
            lines=[],
            auto_advance=bool(p.boolean("auto_advance")),
            description=p.text("description"),
            metadata=p.metadata(),
            default_payment_method=payment_method,
        )
        if behavior == "include":
            for item_id in self._ids_by_kind.get("invoiceitem", []):
                item = self._objects[item_id]
                pending = item["customer"] == customer["id"] and item["invoice"] is None
                if pending and item["currency"] == currency:
                    self._add_invoice_item(invoice_id, item)
        self._emit("invoice.created", invoice_id)
        return self._respond(invoice_id, p)

    def _api_finalize_invoice(self, p: _Params, invoice_id: str) -> JSON:
        """Draft to open: numbered, with a payment intent to pay it (``/pay`` charges it)."""
        p.only("auto_advance")
        invoice = self._fetch("invoice", invoice_id)
        if invoice["status"] != "draft":
            raise StripeError.invalid(
                f"This invoice is already finalized, you can't re-finalize a non-draft invoice."
                f" (invoice {invoice_id} is {invoice['status']})",
                code="invoice_not_editable",
            )
        auto_advance = p.boolean("auto_advance")
        if auto_advance is not None:
            invoice["auto_advance"] = auto_advance
        self._finalize_invoice(invoice_id)
        return self._respond(invoice_id, p)

    def _api_create_invoice_item(self, p: _Params) -> JSON:
        """A charge of an amount to a customer: pending until an invoice takes it, or added to
        the draft invoice ``invoice`` at once."""
        p.only("customer", "amount", "currency", "description", "invoice", "metadata")
        customer = self._fetch("customer", p.required_text("customer"), param="customer")
        amount = p.required_integer("amount")
        currency = p.required_text("currency").lower()
        invoice_id = p.text("invoice")
        invoice = None
        if invoice_id is not None:
            invoice = self._fetch("invoice", invoice_id, param="invoice")
            if invoice["customer"] != customer["id"]:
                raise StripeError.invalid(
                    f"The invoice {invoice_id} belongs to another customer.", "invoice"
                )
            if invoice["status"] != "draft":
                raise StripeError.invalid(
                    f"You can only add invoice items to draft invoices; {invoice_id} is "
                    f"{invoice['status']}.",
                    "invoice",
                    code="invoice_not_editable",
                )
            if invoice["currency"] != currency:
                raise StripeError.invalid(
                    f"The currency of this invoice item ({currency}) must match the currency "
                    f"of the invoice ({invoice['currency']}).",
                    "currency",
                )
        now = self.now()
        item_id = self._new_id("ii_")
        self._store(
            {
                "id": item_id,
                "object": "invoiceitem",
                "amount": amount,
                "currency": currency,
                "customer": customer["id"],
                "date": now,
                "description": p.text("description"),
                "discountable": amount > 0,
                "discounts": [],
                "livemode": False,
                "metadata": p.metadata(),
                "net_amount": amount,
                "period": {"end": now, "start": now},
                "pricing": {
                    "price_details": None,
                    "type": "price_details",
                    "unit_amount_decimal": str(amount),
                },
                "proration": False,
                "proration_details": {"credited_items": None, "discount_amounts": []},
                "quantity": 1,
                "quantity_decimal": "1",
                "tax_rates": [],
                **_nulls(
                    "customer_account frozen_fields invoice invoicing_rules parent test_clock"
                ),
            }
        )
        if invoice is not None:
            self._add_invoice_item(invoice["id"], self._objects[item_id])
        self._emit("invoiceitem.created", item_id)
        return self._respond(item_id, p)

    def _add_invoice_item(self, invoice_id: str, item: JSON) -> None:
        """Put a pending invoice item on a draft invoice as a line, and total the invoice."""
        invoice = self._objects[invoice_id]
        item["invoice"] = invoice_id
        invoice["lines"]["data"].append(
            {
                "id": self._new_id("il_"),
                "object": "line_item",
                "amount": item["amount"],
                "currency": item["currency"],
                "description": item["description"],
                "discount_amounts": [],
                "discountable": item["discountable"],
                "discounts": [],
                "invoice": invoice_id,
                "livemode": False,
                "metadata": dict(item["metadata"]),
                "parent": {
                    "invoice_item_details": {
                        "invoice_item": item["id"],
                        "proration": False,
                        "proration_details": {"credited_items": None},
                        "subscription": None,
                    },
                    "subscription_item_details": None,
                    "type": "invoice_item_details",
                },
                "period": dict(item["period"]),
                "pretax_credit_amounts": [],
                "pricing": _clone(item["pricing"]),
                "quantity": item["quantity"],
                "quantity_decimal": item["quantity_decimal"],
                "subscription": None,
                "subtotal": item["amount"],
                "taxes": [],
            }
        )
        total = sum(line["amount"] for line in invoice["lines"]["data"])
        for field in ("amount_due", "amount_remaining", "subtotal", "subtotal_excluding_tax"):
            invoice[field] = total
        invoice["total"] = invoice["total_excluding_tax"] = total

    def _payment_methods_of(self, customer_id: str) -> set[str]:
        """The payment methods the customer has paid with (the fake keeps no other record)."""
        methods = set()
        for kind, field in (
            ("payment_intent", "payment_method"),
            ("subscription", "default_payment_method"),
        ):
            for object_id in self._ids_by_kind.get(kind, []):
                obj = self._objects[object_id]
                if obj["customer"] == customer_id and obj[field]:
                    methods.add(obj[field])
        return methods

    def _api_list_invoice_payments(self, p: _Params) -> JSON:
        invoice = p.text("invoice")
        status = p.text("status", choices=("canceled", "open", "paid"))
        payment = p.nested("payment")
        intent: str | None = None
        if payment is not None:
            payment.only("type", "payment_intent")
            payment.required_text("type", choices=("payment_intent",))
            intent = payment.text("payment_intent")
        return self._list(
            p,
            "invoice_payment",
            "/v1/invoice_payments",
            lambda record: (
                (invoice is None or record["invoice"] == invoice)
                and (status is None or record["status"] == status)
                and (intent is None or record["payment"].get("payment_intent") == intent)
            ),
            filters=("invoice", "status", "payment"),
        )

    def _create_invoice(
        self, subscription: JSON, billing_reason: str, period_start: int, period_end: int
    ) -> str:
        """A draft invoice for the subscription's items over their current periods.

        The invoice's own ``period_start``/``period_end`` are those Stripe gives it: the
        creation time for a first invoice, the period just ended for a renewal. Callers emit
        ``invoice.created`` once the subscription points at it.
        """
        invoice_id = self._new_id("in_")
        # A trial's first invoice charges nothing: its lines are the trial, for 0.
        trial = billing_reason == "subscription_create" and subscription["trial_end"] is not None
        lines = [
            self._invoice_line(invoice_id, subscription, item, trial=trial)
            for item in self._items_of(subscription["id"])
        ]
        parent = {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription["metadata"]),
                "subscription": subscription["id"],
                "subscription_proration_date": None,
            },
            "type": "subscription_details",
        }
        self._new_invoice(
            invoice_id,
            self._objects[subscription["customer"]],
            currency=subscription["currency"],
            billing_reason=billing_reason,
            period=(period_start, period_end),
            parent=parent,
            lines=lines,
        )
        return invoice_id

    def _new_invoice(
        self,
        invoice_id: str,
        customer: JSON,
        *,
        currency: str,
        billing_reason: str,
        period: tuple[int, int],
        parent: JSON | None,
        lines: list[JSON],
        auto_advance: bool = True,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        default_payment_method: str | None = None,
    ) -> None:
        """Store a draft invoice of ``customer`` with ``lines``; ``parent`` None: a one-off."""
        now = self.now()
        total = sum(line["amount"] for line in lines)
        period_start, period_end = period
        self._store(
            {
                "id": invoice_id,
                "object": "invoice",
                "account_country": "US",
                "account_name": "FakeStripe test account",
                "amount_due": total,
                "amount_overpaid": 0,
                "amount_paid": 0,
                "amount_paid_off_stripe": 0,
                "amount_remaining": total,
                "amount_shipping": 0,
                "attempt_count": 0,
                "attempted": False,
                "auto_advance": auto_advance,
                "automatic_tax": {
                    "enabled": False,
                    **_nulls("disabled_reason liability provider status"),
                },
                "automatically_finalizes_at": now + 60 * 60 if auto_advance else None,
                "billing_reason": billing_reason,
                "collection_method": "charge_automatically",
                "created": now,
                "currency": currency,
                "customer": customer["id"],
                "customer_address": customer["address"],
                "customer_email": customer["email"],
                "customer_name": customer["name"],
                "customer_phone": customer["phone"],
                "customer_tax_exempt": "none",
                "customer_tax_ids": [],
                "default_tax_rates": [],
                "discounts": [],
                "issuer": {"type": "self"},
                "lines": _list_object(lines, f"/v1/invoices/{invoice_id}/lines"),
                "livemode": False,
                "metadata": metadata or {},
                "parent": parent,
                "payment_settings": _nulls(
                    "default_mandate payment_method_options payment_method_types"
                ),
                "period_end": period_end,
                "period_start": period_start,
                "post_payment_credit_notes_amount": 0,
                "pre_payment_credit_notes_amount": 0,
                "starting_balance": 0,
                "status": "draft",
                "status_transitions": _nulls(
                    "finalized_at marked_uncollectible_at paid_at voided_at"
                ),
                "subtotal": total,
                "subtotal_excluding_tax": total,
                "total": total,
                "total_discount_amounts": [],
                "total_excluding_tax": total,
                "total_pretax_credit_amounts": [],
                "total_taxes": [],
                "default_payment_method": default_payment_method,
                "description": description,
                **_nulls(
                    "account_tax_ids application confirmation_secret custom_fields "
                    "customer_account customer_shipping default_source "
                    "due_date effective_at ending_balance footer from_invoice "
                    "hosted_invoice_url invoice_pdf last_finalization_error latest_revision "
                    "next_payment_attempt number on_behalf_of receipt_number rendering "
                    "shipping_cost shipping_details statement_descriptor status_details "
                    "test_clock threshold_reason webhooks_delivered_at"
                ),
            }
        )
        self._invoice_payments[invoice_id] = []

    def _invoice_line(
        self, invoice_id: str, subscription: JSON, item: JSON, *, trial: bool = False
    ) -> JSON:
        price = self._objects[item["price"]]
        product = self._objects[price["product"]]
        amount = 0 if trial else price["unit_amount"] * item["quantity"]
        count, interval = price["recurring"]["interval_count"], price["recurring"]["interval"]
        every = interval if count == 1 else f"every {count} {interval}s"
        unit = _format_amount(price["unit_amount"], price["currency"])
        description = f"{item['quantity']} × {product['name']} (at {unit} / {every})"
        if trial:
            description = f"Trial period for {product['name']}"
        return {
            "id": self._new_id("il_"),
            "object": "line_item",
            "amount": amount,
            "currency": price["currency"],
            "description": description,
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "invoice": invoice_id,
            "livemode": False,
            "metadata": dict(subscription["metadata"]),
            "parent": {
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription["id"],
                    "subscription_item": item["id"],
                },
                "type": "subscription_item_details",
            },
            "period": {"end": item["current_period_end"], "start": item["current_period_start"]},
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price["id"], "product": product["id"]},
                "type": "price_details",
                "unit_amount_decimal": "0" if trial else str(price["unit_amount"]),
            },
            "quantity": item["quantity"],
            "quantity_decimal": str(item["quantity"]),
            "subscription": subscription["id"],
            "subtotal": amount,
            "taxes": [],
        }

    def _finalize_invoice(self, invoice_id: str) -> None:
        """Draft to open: a number, hosted URLs and, for a non-zero total, a payment intent."""
        invoice = self._objects[invoice_id]
        customer = self._objects[invoice["customer"]]
        subscription = self._objects.get(_invoice_subscription(invoice) or "")
        now = self.now()
        secret = self._random_string(40)
        host_path = f"{self.account_id}/test_{secret}"
        invoice.update(
            status="open",
            number=f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}",
            effective_at=now,
            ending_balance=0,
            automatically_finalizes_at=None,
            webhooks_delivered_at=invoice["created"],
            hosted_invoice_url=f"https://invoice.stripe.com/i/{host_path}?s=ap",
            invoice_pdf=f"https://pay.stripe.com/invoice/{host_path}/pdf?s=ap",
        )
        invoice["status_transitions"]["finalized_at"] = now
        customer["next_invoice_sequence"] += 1
        if invoice["amount_due"] > 0:
            if subscription is not None:
                first = invoice["billing_reason"] == "subscription_create"
                description = "Subscription creation" if first else "Subscription update"
                payment_method = subscription["default_payment_method"]
            else:
                # A one-off invoice is paid with its own payment method or the customer's
                # default one; a subscription's is not used.
                description = f"Payment for Invoice {invoice['number']}"
                payment_method = (
                    invoice["default_payment_method"]
                    or customer["invoice_settings"]["default_payment_method"]
                )
            intent_id = self._create_payment_intent(
                customer=customer["id"],
                amount=invoice["amount_due"],
                currency=invoice["currency"],
                description=description,
                metadata={},
                setup_future_usage="off_session" if subscription is not None else None,
                payment_method=payment_method,
            )
            payment_id = self._new_id("inpay_")
            self._store(
                {
                    "id": payment_id,
                    "object": "invoice_payment",
                    "amount_paid": None,
                    "amount_requested": invoice["amount_due"],
                    "created": now,
                    "currency": invoice["currency"],
                    "invoice": invoice_id,
                    "is_default": True,
                    "livemode": False,
                    "payment": {"payment_intent": intent_id, "type": "payment_intent"},
                    "status": "open",
                    "status_transitions": {"canceled_at": None, "paid_at": None},
                }
            )
            self._invoice_payments[invoice_id].append(payment_id)
        self._emit("invoice.finalized", invoice_id)

    def _invoice_intent(self, invoice_id: str) -> str:
        payment = self._objects[self._invoice_payments[invoice_id][-1]]
        return str(payment["payment"]["payment_intent"])

    def _attempt_invoice(self, invoice_id: str, *, succeed: bool) -> bool:
        """Charge an open invoice's payment intent; returns whether the invoice is now paid."""
        invoice = self._objects[invoice_id]
        if invoice["amount_due"] > 0:
            succeed = self._charge_intent(
                self._invoice_intent(invoice_id),
                succeed=succeed,
                receipt_email=invoice["customer_email"],
            )
        else:
            succeed = True
        now = self.now()
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if not succeed:
            invoice["next_payment_attempt"] = now + _RETRY_DELAY
            self._emit("invoice.payment_failed", invoice_id)
            return False
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            next_payment_attempt=None,
            auto_advance=False,
        )
        invoice["status_transitions"]["paid_at"] = now
        for payment_id in self._invoice_payments[invoice_id]:
            payment = self._objects[payment_id]
            payment.update(status="paid", amount_paid=payment["amount_requested"])
            payment["status_transitions"]["paid_at"] = now
        self._emit("invoice.paid", invoice_id)
        self._emit("invoice.payment_succeeded", invoice_id)
        return True

    def _create_payment_intent(
        self,
        *,
        customer: str | None,
        amount: int,
        currency: str,
        description: str | None,
        metadata: dict[str, str],
        setup_future_usage: str | None,
        payment_method: str | None,
    ) -> str:
        intent_id = self._new_id("pi_")
        self._store(
            {
                "id": intent_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_details": {"tip": {}},
                "amount_received": 0,
                "capture_method": "automatic_async",
                "client_secret": f"{intent_id}_secret_{self._random_string(25)}",
                "confirmation_method": "automatic",
                "created": self.now(),
                "currency": currency,
                "customer": customer,
                "description": description,
                "livemode": False,
                "metadata": metadata,
                "payment_method": payment_method,
                "payment_method_options": {
                    "card": {
                        "request_three_d_secure": "automatic",
                        **_nulls("installments mandate_options network"),
                    }
                },
                "payment_method_types": ["card"],
                "setup_future_usage": setup_future_usage,
                "status": "requires_payment_method",
                **_nulls(
                    "allowed_payment_method_types application application_fee_amount "
                    "automatic_payment_methods canceled_at cancellation_reason "
                    "customer_account excluded_payment_method_types hooks last_payment_error "
                    "latest_charge managed_payments next_action on_behalf_of payment_details "
                    "payment_method_configuration_details payment_record presentment_details "
                    "processing receipt_email review shipping source statement_descriptor "
                    "statement_descriptor_suffix transfer_data transfer_group"
                ),
            }
        )
        self._emit("payment_intent.created", intent_id)
        return intent_id

    def _charge_intent(self, intent_id: str, *, succeed: bool, receipt_email: str | None) -> bool:
        """One attempt to charge a payment intent's card; returns whether it succeeded."""
        intent = self._objects[intent_id]
        customer = self._objects.get(intent["customer"] or "", {})
        charge_id = self._new_id("ch_")
        declined = not succeed
        self._store(
            {
                "id": charge_id,
                "object": "charge",
                "amount": intent["amount"],
                "amount_captured": 0 if declined else intent["amount"],
                "amount_refunded": 0,
                "balance_transaction": None if declined else self._new_id("txn_"),
                "billing_details": {
                    "address": _address(customer.get("address")),
                    "email": customer.get("email") or receipt_email,
                    "name": customer.get("name"),
                    "phone": None,
                    "tax_id": None,
                },
                "calculated_statement_descriptor": "FAKESTRIPE",
                "captured": not declined,
                "created": self.now(),
                "currency": intent["currency"],
                "customer": intent["customer"],
                "description": intent["description"],
                "disputed": False,
                "failure_code": "card_declined" if declined else None,
                "failure_message": "Your card was declined." if declined else None,
                "fraud_details": {},
                "livemode": False,
                "metadata": dict(intent["metadata"]),
                "outcome": _outcome(declined=declined),
                "paid": not declined,
                "payment_intent": intent_id,
                "payment_method": intent["payment_method"],
                "payment_method_details": _card_details(declined=declined),
                "receipt_email": receipt_email,
                "receipt_url": None
                if declined
                else f"https://pay.stripe.com/receipts/payment/{self._random_string(96)}",
                "refunded": False,
                "status": "failed" if declined else "succeeded",
                **_nulls(
                    "application application_fee application_fee_amount authorization_code "
                    "failure_balance_transaction level3 on_behalf_of presentment_details "
                    "radar_options receipt_number review shipping source source_transfer "
                    "statement_descriptor statement_descriptor_suffix transfer transfer_data "
                    "transfer_group"
                ),
            }
        )
        self._charge_refunds[charge_id] = []
        intent["latest_charge"] = charge_id
        if declined:
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "advice_code": "try_again_later",
                    "charge": charge_id,
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                    "message": "Your card was declined.",
                    "payment_method_type": "card",
                    "type": "card_error",
                    **_nulls("network_advice_code network_decline_code param"),
                },
            )
            self._emit("charge.failed", charge_id)
            self._emit("payment_intent.payment_failed", intent_id)
            return False
        intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
        self._emit("charge.succeeded", charge_id)
        self._emit("payment_intent.succeeded", intent_id)
        return True

    # ---- charges, refunds, disputes, payment intents ---------------------------------------

    def _api_list_charges(self, p: _Params) -> JSON:
        customer = p.text("customer")
        intent = p.text("payment_intent")
        return self._list(
            p,
            "charge",
            "/v1/charges",
            lambda charge: (
                (customer is None or charge["customer"] == customer)
                and (intent is None or charge["payment_intent"] == intent)
            ),
            filters=("customer", "payment_intent"),
        )

    def _api_list_payment_intents(self, p: _Params) -> JSON:
        customer = p.text("customer")
        return self._list(
            p,
            "payment_intent",
            "/v1/payment_intents",
            lambda intent: customer is None or intent["customer"] == customer,
            filters=("customer",),
        )

    def _api_list_disputes(self, p: _Params) -> JSON:
        charge = p.text("charge")
        intent = p.text("payment_intent")
        return self._list(
            p,
            "dispute",
            "/v1/disputes",
            lambda dispute: (
                (charge is None or dispute["charge"] == charge)
                and (intent is None or dispute["payment_intent"] == intent)
            ),
            filters=("charge", "payment_intent"),
        )

    def _api_update_dispute(self, p: _Params, dispute_id: str) -> JSON:
        """Stage evidence on a dispute awaiting it, and submit it (``submit``, true unless
        said otherwise): the bank then reviews it. ``charge.dispute.updated`` either way."""
        p.only("evidence", "metadata", "submit")
        dispute = self._fetch("dispute", dispute_id)
        before = self._render(dispute_id)
        evidence = p.nested("evidence")
        submit = p.boolean("submit")
        if evidence is not None or submit:
            self._check_awaits_evidence(dispute)
        if evidence is not None:
            evidence.only(*(key for key in _empty_evidence() if key != "enhanced_evidence"))
            for key in evidence.data:
                dispute["evidence"][key] = evidence.text(key)
            dispute["evidence_details"]["has_evidence"] = True
        dispute["metadata"] = p.metadata(dispute["metadata"])
        if submit or (evidence is not None and submit is None):
            details = dispute["evidence_details"]
            details.update(
                submission_count=details["submission_count"] + 1,
                submission_method="manual",
                past_due=self.now() > details["due_by"],
            )
            dispute["status"] = _DISPUTE_NEEDS_RESPONSE[dispute["status"]]
        self._emit_update("charge.dispute.updated", dispute_id, before)
        return self._respond(dispute_id, p)

    def _api_close_dispute(self, p: _Params, dispute_id: str) -> JSON:
        """Accept a dispute: a chargeback is ``lost`` (its funds stay withdrawn), an inquiry
        ``warning_closed``; ``charge.dispute.closed``."""
        p.only()
        dispute = self._fetch("dispute", dispute_id)
        self._check_awaits_evidence(dispute)
        inquiry = dispute["status"].startswith("warning_")
        dispute["status"] = "warning_closed" if inquiry else "lost"
        self._emit("charge.dispute.closed", dispute_id)
        return self._respond(dispute_id, p)

    def _check_awaits_evidence(self, dispute: JSON) -> None:
        status = dispute["status"]
        if status in _DISPUTE_UNDER_REVIEW:
            raise StripeError.invalid(
                f"The evidence for dispute {dispute['id']} has already been submitted and is "
                "under review."
            )
        if status not in _DISPUTE_NEEDS_RESPONSE:
            raise StripeError.invalid(f"Dispute {dispute['id']} is already closed ({status}).")

    def _move_dispute_funds(self, dispute: JSON, *, withdraw: bool) -> None:
        """A balance transaction on the dispute taking the disputed amount and the dispute fee
        out of the balance, or putting the amount back (the fee is not returned), and its
        event. The balance is kept in the charge's currency, so no exchange rate applies."""
        now = self.now()
        currency = dispute["currency"]
        amount = -dispute["amount"] if withdraw else dispute["amount"]
        fee = _DISPUTE_FEE if withdraw else 0
        fee_details = [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Dispute fee",
                "type": "stripe_fee",
            }
        ]
        dispute["balance_transactions"].append(
            {
                "id": self._new_id("txn_"),
                "object": "balance_transaction",
                "amount": amount,
                "available_on": now,
                "balance_type": "payments",
                "created": now,
                "currency": currency,
                "description": (
                    f"Chargeback withdrawal for {dispute['charge']}"
                    if withdraw
                    else f"Chargeback reversal for {dispute['charge']}"
                ),
                "exchange_rate": None,
                "fee": fee,
                "fee_details": fee_details if fee else [],
                "net": amount - fee,
                "reporting_category": "dispute" if withdraw else "dispute_reversal",
                "source": dispute["id"],
                "status": "available",
                "type": "adjustment",
            }
        )
        kind = "funds_withdrawn" if withdraw else "funds_reinstated"
        self._emit(f"charge.dispute.{kind}", dispute["id"])

    def _api_list_refunds(self, p: _Params) -> JSON:
        charge = p.text("charge")
        intent = p.text("payment_intent")
        return self._list(
            p,
            "refund",
            "/v1/refunds",
            lambda refund: (
                (charge is None or refund["charge"] == charge)
                and (intent is None or refund["payment_intent"] == intent)
            ),
            filters=("charge", "payment_intent"),
        )

    def _api_create_refund(self, p: _Params) -> JSON:
        """Refund a charge (named directly or through its payment intent), in full or in part."""
        p.only("charge", "payment_intent", "amount", "reason", "metadata")
        charge = self._refundable_charge(p)
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        amount = p.integer("amount", minimum=1)
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise StripeError.invalid(
                f"Refund amount ({_format_amount(amount, charge['currency'])}) is greater than "
                f"unrefunded amount on charge ({_format_amount(remaining, charge['currency'])})",
                "amount",
                code="amount_too_large",
            )
        reason = p.text("reason", choices=("duplicate", "fraudulent", "requested_by_customer"))
        metadata = p.metadata()
        refund_id = self._new_id("re_")
        self._store(
            {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": self._new_id("txn_"),
                "charge": charge["id"],
                "created": self.now(),
                "currency": charge["currency"],
                "customer": charge["customer"],
                "destination_details": {
                    "card": {
                        "reference": None,
                        "reference_status": "pending",
                        "reference_type": "acquirer_reference_number",
                        "type": "refund",
                    },
                    "type": "card",
                },
                "metadata": metadata,
                "payment_intent": charge["payment_intent"],
                "payment_method": charge["payment_method"],
                "reason": reason,
                "status": "succeeded",
                **_nulls(
                    "customer_account description failure_balance_transaction failure_reason "
                    "instructions_email next_action pending_reason presentment_details "
                    "receipt_number source_transfer_reversal transfer_reversal"
                ),
            }
        )
        self._charge_refunds[charge["id"]].append(refund_id)
        before = self._render(charge["id"])
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        self._emit("refund.created", refund_id)
        self._emit_update("charge.refunded", charge["id"], before)
        return self._respond(refund_id, p)

    def _refundable_charge(self, p: _Params) -> JSON:
        charge_id = p.text("charge")
        intent_id = p.text("payment_intent")
        if charge_id is None and intent_id is None:
            raise StripeError.invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge."
            )
        if intent_id is not None:
            intent = self._fetch("payment_intent", intent_id, param="payment_intent")
            if intent["status"] != "succeeded":
                raise StripeError.invalid(
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to "
                    "refund.",
                    "payment_intent",
                )
            if charge_id not in (None, intent["latest_charge"]):
                raise StripeError.invalid(
                    "The charge does not belong to this PaymentIntent.", "charge"
                )
            charge_id = intent["latest_charge"]
        assert charge_id is not None
        charge = self._fetch("charge", charge_id, param="charge")
        dispute_id = self._charge_disputes.get(charge_id)
        if dispute_id is not None and not self._objects[dispute_id]["is_charge_refundable"]:
            raise StripeError.invalid(
                f"Charge {charge_id} has been charged back; cannot issue a refund.",
                "charge",
                code="charge_disputed",
            )
        if charge["status"] != "succeeded":
            raise StripeError.invalid(
                f"Charge {charge_id} has not succeeded and cannot be refunded.", "charge"
            )
        if charge["amount_refunded"] >= charge["amount_captured"]:
            raise StripeError.invalid(
                f"Charge {charge_id} has already been refunded.",
                "charge",
                code="charge_already_refunded",
            )
        return charge

    # ---- events ------------------------------------------------------------------------------

    def _api_retrieve_event(self, p: _Params, event_id: str) -> JSON:
        p.only()
        event = self._events_by_id.get(event_id)
        if event is None:
            raise _NoSuchObject("event", event_id)
        return self._expand(_clone(event), p.expand())

    def _api_list_events(self, p: _Params) -> JSON:
        p.only("type", "types", "limit", "starting_after", "ending_before", "created")
        patterns = p.strings("types") or []
        if p.has("type"):
            patterns.append(p.required_text("type"))
        created = p.data.get("created")
        events = [
            event
            for event in reversed(self._events)
            if (not patterns or any(fnmatch.fnmatchcase(event["type"], t) for t in patterns))
            and _created_matches(event, created)
        ]
        page, has_more = _paginate(events, p)
        result = _list_object(_clone(page), "/v1/events", has_more=has_more)
        return self._expand(result, p.expand())

    def _emit(self, event_type: str, object_id: str, previous: JSON | None = None) -> None:
        """Append an event carrying a snapshot of the object as it is now."""
        data: JSON = {"object": self._render(object_id)}
        if previous is not None:
            data["previous_attributes"] = previous
        context = self._context
        event: JSON = {
            "id": self._new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {
                "id": context.request_id if context else None,
                "idempotency_key": context.idempotency_key if context else None,
            },
            "type": event_type,
        }
        self._events.append(event)
        self._events_by_id[event["id"]] = event

    def _emit_update(self, event_type: str, object_id: str, before: JSON) -> None:
        """Emit an update event with ``previous_attributes``, if the object changed."""
        previous = _previous_attributes(before, self._render(object_id))
        if previous:
            self._emit(event_type, object_id, previous)

    def _events_since(self, mark: int) -> list[JSON]:
        return _clone(self._events[mark:])

    # ---- storage, clock, rendering and expansion ----------------------------------------------

    def _new_id(self, prefix: str, length: int = 24) -> str:
        while True:
            object_id = prefix + self._random_string(length)
            if object_id not in self._objects and object_id not in self._events_by_id:
                return object_id

    def _random_string(self, length: int) -> str:
        return "".join(self._random.choices(_ALPHANUMERIC, k=length))

    def _store(self, obj: JSON) -> None:
        self._objects[obj["id"]] = obj
        self._ids_by_kind.setdefault(obj["object"], []).append(obj["id"])

    def _fetch(self, kind: str, object_id: str, *, param: str = "id") -> JSON:
        """The stored object, or Stripe's 404 (which is also a ``ValueError``)."""
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != kind or obj.get("deleted"):
            raise _NoSuchObject(kind, object_id, param)
        return obj

    @contextmanager
    def _operation(self) -> Iterator[None]:
        """Hold the lock for one request or control call, with the clock pinned meanwhile."""
        with self._lock:
            outermost = self._pinned_now is None
            if outermost:
                self._pinned_now = self.now()
            try:
                yield
            finally:
                if outermost:
                    self._pinned_now = None

    def _move_clock_to(self, moment: int) -> None:
        """Move the clock forward to ``moment`` (never back); due Checkout sessions expire."""
        delta = moment - self.now()
        if delta > 0:
            self._clock_offset += delta
            if self._pinned_now is not None:
                self._pinned_now += delta
            self._expire_due_sessions()

    def _render(self, object_id: str) -> JSON:
        """An object as the API answers it: ``id`` and ``object`` first, embedded objects in."""
        stored = self._objects[object_id]
        rendered = _clone(stored)
        if stored["object"] == "subscription" and not stored.get("deleted"):
            rendered["items"] = _list_object(
                [self._render(item_id) for item_id in self._subscription_items[object_id]],
                f"/v1/subscription_items?subscription={object_id}",
            )
        elif stored["object"] == "subscription_item":
            rendered["price"] = self._render(stored["price"])
            rendered["plan"] = _plan_from_price(rendered["price"])
        head = {"id": rendered.pop("id"), "object": rendered.pop("object")}
        return head | dict(sorted(rendered.items()))

    def _render_session_lines(self, session_id: str) -> list[JSON]:
        lines = _clone(self._session_lines[session_id])
        for line in lines:
            line["price"] = self._render(line["price"])
        return lines

    def _includable(self, obj: JSON, field: str) -> JSON | None:
        """Fields Stripe leaves out unless expanded ("includable" in its API reference)."""
        kind, object_id = obj.get("object"), obj.get("id")
        if not isinstance(object_id, str):
            return None
        if kind == "invoice" and field == "payments":
            payments = [self._render(i) for i in self._invoice_payments.get(object_id, [])]
            return _list_object(payments, f"/v1/invoices/{object_id}/payments")
        if kind == "checkout.session" and field == "line_items":
            lines = self._render_session_lines(object_id)
            return _list_object(lines, f"/v1/checkout/sessions/{object_id}/line_items")
        if kind == "charge" and field == "refunds":
            refunds = [self._render(i) for i in reversed(self._charge_refunds.get(object_id, []))]
            return _list_object(refunds, f"/v1/charges/{object_id}/refunds")
        if kind == "customer" and field == "subscriptions":
            subscriptions = [
                self._render(subscription_id)
                for subscription_id in reversed(self._ids_by_kind.get("subscription", []))
                if self._objects[subscription_id]["customer"] == object_id
                and self._objects[subscription_id]["status"] not in _ENDED
            ]
            return _list_object(subscriptions, f"/v1/customers/{object_id}/subscriptions")
        return None

    def _expand(self, obj: JSON, paths: list[str]) -> JSON:
        """Apply ``expand[]``: ids become objects, includable fields appear; ``data.`` on lists."""
        for path in paths:
            parts = path.split(".")
            if len(parts) > _MAX_EXPAND_DEPTH:
                raise StripeError.invalid(
                    f"You cannot expand more than {_MAX_EXPAND_DEPTH} levels of a property. "
                    f"Property: {path}",
                    "expand",
                )
            self._expand_path(obj, parts)
        return obj

    def _expand_path(self, obj: JSON, parts: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if obj.get("object") in ("list", "search_result") and head == "data":
            for item in obj["data"]:
                if rest:
                    self._expand_path(item, rest)
            return
        if head not in obj:
            included = self._includable(obj, head)
            if included is None:
                raise StripeError.invalid(f"This property cannot be expanded ({head}).", "expand")
            obj[head] = included
        value = obj[head]
        if isinstance(value, str):
            if value not in self._objects:
                raise StripeError.invalid(f"This property cannot be expanded ({head}).", "expand")
            value = obj[head] = self._render(value)
        elif value is not None and not isinstance(value, dict):
            raise StripeError.invalid(f"This property cannot be expanded ({head}).", "expand")
        if rest and isinstance(value, dict):
            self._expand_path(value, rest)


# --------------------------------------------------------------------------------------------
# HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.fake = fake
        self.stopped = False


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's HTTP client expects
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait 40 ms
    server: _Server

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        if self.server.stopped:  # a kept-alive connection outliving stop(): hang up
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.fake.latency:
            time.sleep(self.server.fake.latency)  # outside the lock: calls wait side by side
        status, payload, headers = self.server.fake._handle(
            method, self.path, dict(self.headers.items()), body
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read :attr:`FakeStripe.requests` instead of a log."""
