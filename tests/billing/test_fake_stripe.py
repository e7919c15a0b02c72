"""The fake Stripe, driven only through the real SDK, as the gateway drives Stripe."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import stripe
from stripe.billing_portal import Session as PortalSession
from stripe.checkout import Session as CheckoutSession
from stripe.params import CustomerCreateParams
from stripe.params.checkout import SessionCreateParams

from tests.billing.fake_stripe import (
    API_VERSION,
    FakeStripe,
    event_payload,
    parse_form,
    sign_payload,
)

SECRET_KEY = "sk_test_fake_stripe_tests"
WEBHOOK_SECRET = "whsec_fake_stripe_tests"
SUCCESS_URL = "https://news.example/support/thanks?session_id={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://news.example/support"
DAY = 24 * 60 * 60


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(seed=2026) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_account(fake: FakeStripe) -> Iterator[None]:
    """Each test starts with an empty account and must not trip the fake itself."""
    fake.reset()
    yield
    assert fake.errors == []


@contextmanager
def sdk_client(fake: FakeStripe, api_key: str = SECRET_KEY) -> Iterator[stripe.StripeClient]:
    """A client built as the gateway builds one; its connections close on exit (in the
    thread that used them: the SDK keeps one HTTP session per thread)."""
    http_client = stripe.RequestsClient()
    try:
        yield stripe.StripeClient(
            api_key,
            stripe_version=API_VERSION,
            base_addresses={"api": fake.api_base},
            http_client=http_client,
            max_network_retries=0,
        )
    finally:
        http_client.close()  # type: ignore[no-untyped-call]  # untyped in stripe 16.1


@pytest.fixture(scope="module")
def client(fake: FakeStripe) -> Iterator[stripe.StripeClient]:
    with sdk_client(fake) as sdk:
        yield sdk


def make_price(
    client: stripe.StripeClient,
    lookup_key: str = "supporter_monthly",
    *,
    amount: int = 500,
    interval: str = "month",
) -> stripe.Price:
    return client.v1.prices.create(
        params={
            "currency": "eur",
            "unit_amount": amount,
            "recurring": {"interval": interval},
            "lookup_key": lookup_key,
            "product_data": {"name": "Supporter", "metadata": {"tier": "supporter"}},
        }
    )


def open_session(client: stripe.StripeClient, price_id: str, **extra: Any) -> CheckoutSession:
    params: SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": price_id, "quantity": 1}],
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
    }
    params.update(extra)  # type: ignore[typeddict-item]
    return client.v1.checkout.sessions.create(params=params)


def subscribe(
    client: stripe.StripeClient, fake: FakeStripe, price_id: str, email: str = "pat@example.org"
) -> stripe.Subscription:
    session = open_session(client, price_id, customer_email=email)
    fake.complete_checkout(session.id)
    subscription_id = client.v1.checkout.sessions.retrieve(session.id).subscription
    assert isinstance(subscription_id, str)
    return client.v1.subscriptions.retrieve(subscription_id)


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


# ---- plumbing --------------------------------------------------------------------------------


def test_speaks_the_api_version_the_sdk_pins(client: stripe.StripeClient, fake: FakeStripe) -> None:
    assert stripe.api_version == API_VERSION
    client.v1.customers.create(params={"email": "pat@example.org"})
    (request,) = fake.requests
    assert request.stripe_version == API_VERSION
    assert fake.events[0]["api_version"] == API_VERSION


@pytest.mark.parametrize(
    ("pairs", "parsed"),
    [
        ([("metadata[member_id]", "7")], {"metadata": {"member_id": "7"}}),
        ([("metadata[0]", "zero")], {"metadata": {"0": "zero"}}),
        (
            [("expand[]", "subscription"), ("expand[]", "invoice")],
            {"expand": ["subscription", "invoice"]},
        ),
        ([("lookup_keys[]", "a")], {"lookup_keys": ["a"]}),
        ([("expand[1]", "b"), ("expand[0]", "a")], {"expand": ["a", "b"]}),
        (
            [
                ("line_items[0][price_data][recurring][interval]", "month"),
                ("line_items[0][quantity]", "1"),
                ("line_items[1][price]", "price_x"),
            ],
            {
                "line_items": [
                    {"price_data": {"recurring": {"interval": "month"}}, "quantity": "1"},
                    {"price": "price_x"},
                ]
            },
        ),
        ([("cancel_at", "")], {"cancel_at": ""}),
    ],
)
def test_reads_form_brackets_as_stripe_does(
    pairs: list[tuple[str, str]], parsed: dict[str, Any]
) -> None:
    assert parse_form(pairs) == parsed


def test_records_parameters_as_the_sdk_encodes_them(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    price = make_price(client)
    open_session(client, price.id, metadata={"member_id": "7"}, expand=["line_items"])
    request = fake.requests[-1]
    assert request.method == "POST" and request.path == "/v1/checkout/sessions"
    assert request.params["line_items"] == [{"price": price.id, "quantity": "1"}]
    assert request.params["metadata"] == {"member_id": "7"}
    assert request.params["expand"] == ["line_items"]
    assert request.idempotency_key  # the SDK sends one with every POST


@pytest.mark.parametrize("api_key", ["sk_live_not_in_tests", "pk_test_publishable"])
def test_refuses_keys_other_than_a_test_secret_key(fake: FakeStripe, api_key: str) -> None:
    with sdk_client(fake, api_key) as client, pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.customers.list()
    assert raised.value.http_status == 401
    assert api_key not in str(raised.value)  # the key is masked, as Stripe masks it
    assert fake.requests[-1].status == 401


def test_replays_a_repeated_idempotency_key_without_creating_anything(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    params: CustomerCreateParams = {"email": "pat@example.org", "metadata": {"member_id": "7"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": "member-7"})
    again = client.v1.customers.create(params=params, options={"idempotency_key": "member-7"})

    assert again.id == first.id
    assert [c.id for c in client.v1.customers.list().data] == [first.id]
    assert types_of(fake.events) == ["customer.created"]
    assert fake.events[0]["request"]["idempotency_key"] == "member-7"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(
            params={"email": "other@example.org"}, options={"idempotency_key": "member-7"}
        )


@pytest.mark.parametrize(
    ("retrieve", "kind"),
    [
        (lambda c: c.v1.customers.retrieve("cus_missing"), "customer"),
        (lambda c: c.v1.subscriptions.retrieve("sub_missing"), "subscription"),
        (lambda c: c.v1.checkout.sessions.retrieve("cs_test_missing"), "checkout.session"),
        (lambda c: c.v1.invoices.retrieve("in_missing"), "invoice"),
        (lambda c: c.v1.events.retrieve("evt_missing"), "event"),
    ],
)
def test_unknown_ids_raise_invalid_request_error(
    client: stripe.StripeClient, retrieve: Any, kind: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        retrieve(client)
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert f"No such {kind}" in str(raised.value)


def test_refuses_unknown_and_malformed_parameters(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    price = make_price(client)
    misspelt: Any = {"emial": "pat@example.org"}
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.create(params=misspelt)
    assert (unknown.value.http_status, unknown.value.param) == (400, "emial")
    with pytest.raises(stripe.InvalidRequestError) as no_quantity:
        client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": price.id}]}
        )
    assert no_quantity.value.param == "line_items[0][quantity]"
    with pytest.raises(stripe.InvalidRequestError, match="recurring price"):
        client.v1.checkout.sessions.create(
            params={"mode": "payment", "line_items": [{"price": price.id, "quantity": 1}]}
        )
    assert client.v1.checkout.sessions.list().data == []
    assert not fake.events_of_type("customer.*")


def test_a_refused_request_changes_nothing(client: stripe.StripeClient, fake: FakeStripe) -> None:
    events_before = len(fake.events)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [
                    {
                        "price_data": {
                            "currency": "eur",
                            "unit_amount": 700,
                            "product_data": {"name": "Inline"},
                            "recurring": {"interval": "month"},
                        },
                        "quantity": 1,
                    },
                    {"price": "price_missing", "quantity": 1},
                ],
            }
        )
    assert client.v1.products.list().data == []
    assert client.v1.prices.list().data == []
    assert len(fake.events) == events_before


def test_serves_requests_from_several_threads(fake: FakeStripe) -> None:
    failures: list[BaseException] = []

    def create_customers(worker: int) -> None:
        try:
            with sdk_client(fake) as client:
                for number in range(5):
                    client.v1.customers.create(params={"email": f"{worker}-{number}@example.org"})
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=create_customers, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(fake.events_of_type("customer.created")) == 30
    assert len({event["data"]["object"]["id"] for event in fake.events}) == 30


# ---- catalogue and customers ---------------------------------------------------------------


def test_customers_are_created_updated_listed_and_searched(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    pat = client.v1.customers.create(
        params={"email": "pat@example.org", "name": "Pat", "metadata": {"member_id": "7"}}
    )
    client.v1.customers.create(params={"email": "sam@example.org"})
    updated = client.v1.customers.update(
        pat.id, params={"name": "Pat Ron", "metadata": {"member_id": "", "source": "web"}}
    )

    assert isinstance(updated, stripe.Customer)
    assert pat.id.startswith("cus_") and updated.name == "Pat Ron"
    assert updated.metadata is not None and updated.metadata.to_dict() == {"source": "web"}
    listed = client.v1.customers.list(params={"email": "pat@example.org"})
    assert [c.id for c in listed.data] == [pat.id]
    found = client.v1.customers.search(params={"query": "metadata['source']:'web'"})
    assert [c.id for c in found.data] == [pat.id]
    (change,) = fake.events_of_type("customer.updated")
    assert change["data"]["previous_attributes"] == {
        "metadata": {"member_id": "7", "source": None},
        "name": "Pat",
    }


def test_prices_are_found_by_lookup_key_and_the_key_can_move(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    old = make_price(client, amount=500)
    with pytest.raises(stripe.InvalidRequestError, match="already uses that lookup key"):
        make_price(client, amount=600)
    new = client.v1.prices.create(
        params={
            "currency": "eur",
            "unit_amount": 600,
            "recurring": {"interval": "month"},
            "product": old.product if isinstance(old.product, str) else old.product.id,
            "lookup_key": "supporter_monthly",
            "transfer_lookup_key": True,
        }
    )

    found = client.v1.prices.list(
        params={"lookup_keys": ["supporter_monthly"], "expand": ["data.product"]}
    )
    (price,) = found.data
    assert price.id == new.id and price.unit_amount == 600
    assert isinstance(price.product, stripe.Product) and price.product.name == "Supporter"
    assert price.recurring is not None and price.recurring.interval == "month"
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    archived = client.v1.prices.update(old.id, params={"active": False})
    assert archived.active is False
    assert types_of(fake.events) == [
        "product.created",
        "price.created",
        "price.updated",  # the key left the old price
        "price.created",
        "price.updated",  # archived
    ]


def test_prices_are_listed_for_ten_lookup_keys_at_most(client: stripe.StripeClient) -> None:
    price = make_price(client, "key-0")
    keys = [f"key-{n}" for n in range(11)]
    found = client.v1.prices.list(params={"lookup_keys": keys[:10]})
    assert [p.id for p in found.data] == [price.id]
    with pytest.raises(stripe.InvalidRequestError, match="up to 10 lookup_keys") as refused:
        client.v1.prices.list(params={"lookup_keys": keys})
    assert refused.value.param == "lookup_keys"


def test_products_are_listed_by_ids_and_active(client: stripe.StripeClient) -> None:
    kept = client.v1.products.create(params={"name": "Reader", "metadata": {"tier": "reader"}})
    retired = client.v1.products.create(params={"name": "Old tier"})
    client.v1.products.update(retired.id, params={"active": False})

    active = client.v1.products.list(params={"active": True})
    assert [p.id for p in active.data] == [kept.id]
    by_id = client.v1.products.list(params={"ids": [retired.id]})
    assert [p.id for p in by_id.data] == [retired.id]


# ---- checkout, portal ----------------------------------------------------------------------


def test_checkout_session_has_the_fields_an_integration_reads(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 1200,
                        "recurring": {"interval": "month"},
                        "product_data": {"name": "Patron"},
                    },
                    "quantity": 1,
                }
            ],
            "customer_email": "pat@example.org",
            "client_reference_id": "member-7",
            "metadata": {"member_id": "7"},
            "subscription_data": {"metadata": {"member_id": "7"}},
            "success_url": SUCCESS_URL,
            "cancel_url": CANCEL_URL,
            "expand": ["line_items"],
        }
    )

    assert isinstance(session, CheckoutSession)
    assert session.id.startswith("cs_test_")
    assert session.url == f"https://checkout.stripe.com/c/pay/{session.id}"
    assert (session.mode, session.status, session.payment_status) == (
        "subscription",
        "open",
        "unpaid",
    )
    assert session.customer is None and session.customer_email == "pat@example.org"
    assert session.client_reference_id == "member-7"
    assert session.metadata is not None and session.metadata["member_id"] == "7"
    assert session.success_url == SUCCESS_URL  # Stripe keeps the template
    assert fake.success_redirect_url(session.id).endswith(f"session_id={session.id}")
    assert session.amount_total == 1200 and session.currency == "eur"
    assert session.line_items is not None
    (line,) = session.line_items.data
    assert line.price is not None and line.price.unit_amount == 1200
    assert line.description == "Patron"
    assert fake.events == []  # creating a session emits nothing, as on Stripe


def test_an_open_session_expires_on_request_or_with_time(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    price = make_price(client)
    first, second = open_session(client, price.id), open_session(client, price.id)

    expired = client.v1.checkout.sessions.expire(first.id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(first.id)
    events = fake.advance_clock(24 * 60 * 60)
    assert [(e["type"], e["data"]["object"]["id"]) for e in events] == [
        ("checkout.session.expired", second.id)
    ]
    with pytest.raises(ValueError, match="not open"):
        fake.complete_checkout(second.id)


def test_billing_portal_session(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "pat@example.org"})
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://news.example/account"}
    )
    assert isinstance(portal, PortalSession)
    assert portal.id.startswith("bps_") and portal.customer == customer.id
    assert portal.url.startswith("https://billing.stripe.com/p/session/")
    assert portal.return_url == "https://news.example/account"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing_portal.sessions.create(params={"customer": "cus_missing"})


# ---- the life of a subscription ----------------------------------------------------------


def test_full_flow_from_checkout_to_refund(client: stripe.StripeClient, fake: FakeStripe) -> None:
    make_price(client)
    (price,) = client.v1.prices.list(params={"lookup_keys": ["supporter_monthly"]}).data
    session = open_session(
        client,
        price.id,
        customer_email="pat@example.org",
        client_reference_id="7",
        subscription_data={"metadata": {"member_id": "7"}},
    )

    completed = fake.complete_checkout(session.id)
    assert types_of(completed) == [
        "customer.created",
        "customer.subscription.created",
        "invoice.created",
        "payment_intent.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.completed",
    ]
    assert completed[1]["data"]["object"]["status"] == "incomplete"  # the snapshot then
    assert completed[-2]["data"]["previous_attributes"] == {"status": "incomplete"}

    done = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription", "subscription.latest_invoice"]}
    )
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.customer_details is not None
    assert done.customer_details.email == "pat@example.org"
    subscription = done.subscription
    assert isinstance(subscription, stripe.Subscription)
    assert subscription.status == "active" and subscription.customer == done.customer
    assert subscription.metadata["member_id"] == "7"
    item = subscription["items"]["data"][0]
    assert isinstance(item, stripe.SubscriptionItem)
    assert item.price.id == price.id and item.plan.id == price.id
    first_period_end = item["current_period_end"]
    assert first_period_end > item["current_period_start"] == subscription.start_date
    invoice = subscription.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.status == "paid" and invoice.billing_reason == "subscription_create"
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == subscription.id
    line = invoice.lines.data[0]
    assert line.pricing is not None and line.pricing.price_details is not None
    assert line.pricing.price_details.price == price.id
    assert (line.period.start, line.period.end) == (item.current_period_start, first_period_end)

    renewal = fake.renew(subscription.id, outcome="failed")
    assert "invoice.payment_failed" in types_of(renewal)
    assert renewal[-1]["type"] == "customer.subscription.updated"
    assert renewal[-1]["data"]["previous_attributes"] == {"status": "active"}
    past_due = client.v1.subscriptions.retrieve(subscription.id)
    assert past_due.status == "past_due"
    assert past_due["items"]["data"][0]["current_period_start"] == first_period_end
    unpaid = client.v1.invoices.retrieve(str(past_due.latest_invoice))
    assert (unpaid.status, unpaid.billing_reason, unpaid.attempt_count) == (
        "open",
        "subscription_cycle",
        1,
    )

    recovered = fake.pay_latest_invoice(subscription.id)
    assert types_of(recovered)[-1] == "customer.subscription.updated"
    assert client.v1.subscriptions.retrieve(subscription.id).status == "active"
    paid = client.v1.invoices.retrieve(unpaid.id, params={"expand": ["payments"]})
    assert paid.status == "paid" and paid.payments is not None
    (payment,) = paid.payments.data
    assert isinstance(payment, stripe.InvoicePayment) and payment.status == "paid"
    intent = client.v1.payment_intents.retrieve(str(payment.payment.payment_intent))
    assert intent.status == "succeeded"
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.payment_intent == intent.id and charge.receipt_url
    assert (charge.amount, charge.amount_refunded, charge.refunded) == (500, 0, False)

    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 200})
    assert refund.id.startswith("re_") and refund.status == "succeeded"
    client.v1.refunds.create(params={"payment_intent": intent.id})  # the rest
    refunded = client.v1.charges.retrieve(charge.id, params={"expand": ["refunds"]})
    assert (refunded.amount_refunded, refunded.refunded) == (500, True)
    assert refunded.refunds is not None and len(refunded.refunds.data) == 2
    charge_refunded = fake.events_of_type("charge.refunded")
    assert [e["data"]["object"]["amount_refunded"] for e in charge_refunded] == [200, 500]
    assert charge_refunded[-1]["data"]["previous_attributes"] == {
        "amount_refunded": 200,
        "refunded": False,
    }
    event = client.v1.events.retrieve(charge_refunded[-1]["id"])
    assert isinstance(event.data.object, stripe.Charge)
    assert event.request is not None and event.request.idempotency_key  # came from our POST
    with pytest.raises(stripe.InvalidRequestError, match="already been refunded"):
        client.v1.refunds.create(params={"charge": charge.id})


@pytest.mark.parametrize(
    ("ahead", "message"),
    [
        (2 * DAY - 60, "has to be at least 2 days in the future"),
        (731 * DAY, "maximum number of trial period days is 730"),
    ],
)
def test_checkout_refuses_a_trial_too_soon_or_too_far(
    client: stripe.StripeClient, fake: FakeStripe, ahead: int, message: str
) -> None:
    price = make_price(client)
    with pytest.raises(stripe.InvalidRequestError, match=message) as refused:
        open_session(client, price.id, subscription_data={"trial_end": fake.now() + ahead})
    assert refused.value.param == "subscription_data[trial_end]"
    assert client.v1.checkout.sessions.list().data == []


def test_a_trial_defers_the_first_charge_to_its_end(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    price = make_price(client)
    trial_end = fake.now() + 10 * DAY
    session = open_session(
        client,
        price.id,
        customer_email="pat@example.org",
        subscription_data={"trial_end": trial_end},
    )
    assert (session.amount_total, session.payment_status) == (0, "unpaid")

    completed = fake.complete_checkout(session.id)

    assert types_of(completed) == [
        "customer.created",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ]
    assert completed[1]["data"]["object"]["status"] == "trialing"
    done = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["subscription.latest_invoice"]}
    )
    assert (done.status, done.payment_status) == ("complete", "no_payment_required")
    subscription = done.subscription
    assert isinstance(subscription, stripe.Subscription)
    assert subscription.status == "trialing"
    assert (subscription.trial_start, subscription.trial_end) == (
        subscription.start_date,
        trial_end,
    )
    assert subscription.billing_cycle_anchor == trial_end
    item = subscription["items"]["data"][0]
    assert (item.current_period_start, item.current_period_end) == (
        subscription.start_date,
        trial_end,
    )
    first = subscription.latest_invoice
    assert isinstance(first, stripe.Invoice)
    assert (first.status, first.amount_due, first.billing_reason) == (
        "paid",
        0,
        "subscription_create",
    )
    assert first.lines.data[0].description == "Trial period for Supporter"
    assert client.v1.charges.list().data == []

    renewal = fake.renew(subscription.id)

    assert fake.now() == trial_end
    assert "invoice.paid" in types_of(renewal)
    assert renewal[-1]["data"]["previous_attributes"] == {"status": "trialing"}
    active = client.v1.subscriptions.retrieve(
        subscription.id, params={"expand": ["latest_invoice"]}
    )
    assert active.status == "active" and active.trial_end == trial_end
    paid = active.latest_invoice
    assert isinstance(paid, stripe.Invoice)
    assert (paid.status, paid.amount_paid, paid.billing_reason) == (
        "paid",
        500,
        "subscription_cycle",
    )
    assert paid.status_transitions.paid_at == trial_end
    item = active["items"]["data"][0]
    assert item.current_period_start == trial_end
    assert item.current_period_end > trial_end + 27 * DAY
    (charge,) = client.v1.charges.list().data
    assert (charge.amount, charge.status) == (500, "succeeded")


def test_a_declined_first_payment_leaves_the_subscription_incomplete(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    price = make_price(client)
    session = open_session(client, price.id, customer_email="pat@example.org")

    events = fake.complete_checkout(session.id, outcome="declined")

    assert "invoice.payment_failed" in types_of(events)
    assert "invoice.paid" not in types_of(events)
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["invoice"]})
    assert (done.status, done.payment_status) == ("complete", "unpaid")
    assert isinstance(done.invoice, stripe.Invoice) and done.invoice.status == "open"
    subscription = client.v1.subscriptions.retrieve(str(done.subscription))
    assert subscription.status == "incomplete"
    fake.pay_latest_invoice(subscription.id)
    assert client.v1.subscriptions.retrieve(subscription.id).status == "active"


def test_a_subscription_made_without_checkout_is_billed_then_cancelled_and_refunded(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    """As the Dashboard or another integration makes one: the card on file pays at once."""
    price = make_price(client)
    customer = client.v1.customers.create(
        params={"email": "pat@example.org", "metadata": {"member_id": "7"}}
    )
    mark = len(fake.events)

    made = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "metadata": {"member_id": "7"},
        }
    )

    assert isinstance(made, stripe.Subscription)
    assert (made.status, made.customer) == ("active", customer.id)
    assert made.metadata.to_dict() == {"member_id": "7"}
    assert types_of(fake.events[mark:]) == [
        "customer.subscription.created",
        "invoice.created",
        "payment_intent.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    invoice = client.v1.invoices.retrieve(str(made.latest_invoice), params={"expand": ["payments"]})
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == (
        "subscription_create",
        "paid",
        500,
    )
    # An inline price of another product; with default_incomplete nothing is charged yet.
    tote = client.v1.products.create(params={"name": "Tote bag club"})
    waiting = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 1200,
                        "product": tote.id,
                        "recurring": {"interval": "year"},
                    }
                }
            ],
            "payment_behavior": "default_incomplete",
        }
    )
    assert waiting.status == "incomplete"
    assert waiting["items"]["data"][0].price.product == tote.id
    assert client.v1.invoices.retrieve(str(waiting.latest_invoice)).status == "open"
    one_time = client.v1.prices.create(
        params={"currency": "eur", "unit_amount": 500, "product": tote.id}
    )
    with pytest.raises(stripe.InvalidRequestError, match="type=recurring"):
        client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": one_time.id}]}
        )
    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        client.v1.subscriptions.create(
            params={"customer": "cus_missing", "items": [{"price": price.id}]}
        )

    # Cancelling does not refund: that is a refund of its own, here of the whole first charge.
    cancelled = client.v1.subscriptions.cancel(made.id)
    assert cancelled.status == "canceled"
    assert invoice.payments is not None
    intent_id = str(invoice.payments.data[0].payment.payment_intent)
    refund = client.v1.refunds.create(
        params={"payment_intent": intent_id, "reason": "duplicate", "expand": ["charge"]}
    )
    assert refund.amount == 500 and refund.reason == "duplicate"
    assert isinstance(refund.charge, stripe.Charge) and refund.charge.refunded is True
    with pytest.raises(stripe.InvalidRequestError, match="already been refunded"):
        client.v1.refunds.create(params={"payment_intent": intent_id})


def test_a_one_off_invoice_from_items_is_finalized_paid_and_refunded(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id)
    customer = str(subscription.customer)
    card = str(subscription.default_payment_method)
    seen = len(fake.events)

    # A pending item, taken in by the invoice; a second one added to the draft.
    tote = client.v1.invoice_items.create(
        params={"customer": customer, "amount": 1200, "currency": "eur", "description": "Tote"}
    )
    assert tote.invoice is None
    draft = client.v1.invoices.create(
        params={
            "customer": customer,
            "default_payment_method": card,
            "pending_invoice_items_behavior": "include",
        }
    )
    mug = client.v1.invoice_items.create(
        params={"customer": customer, "amount": 800, "currency": "eur", "invoice": draft.id}
    )
    draft = client.v1.invoices.retrieve(draft.id)
    assert (draft.status, draft.billing_reason, draft.parent) == ("draft", "manual", None)
    assert (draft.amount_due, draft.currency, draft.auto_advance) == (2000, "eur", False)
    assert [line.amount for line in draft.lines.data] == [1200, 800]
    line = draft.lines.data[0]
    assert line.parent is not None and line.parent.invoice_item_details is not None
    assert line.parent.invoice_item_details.invoice_item == tote.id
    assert line.subscription is None
    with pytest.raises(stripe.InvalidRequestError, match="must match"):
        client.v1.invoice_items.create(
            params={"customer": customer, "amount": 5, "currency": "usd", "invoice": draft.id}
        )

    opened = client.v1.invoices.finalize_invoice(draft.id)
    assert opened.status == "open" and opened.number
    with pytest.raises(stripe.InvalidRequestError, match="already finalized"):
        client.v1.invoices.finalize_invoice(draft.id)
    with pytest.raises(stripe.InvalidRequestError, match="draft invoices"):
        client.v1.invoice_items.create(
            params={"customer": customer, "amount": 5, "currency": "eur", "invoice": draft.id}
        )
    paid = client.v1.invoices.pay(draft.id)
    assert (paid.status, paid.amount_paid) == ("paid", 2000)
    assert types_of(fake.events[seen:]) == [
        "invoiceitem.created",
        "invoice.created",
        "invoiceitem.created",
        "payment_intent.created",
        "invoice.finalized",
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    # Its charge names no invoice; the invoice is found from the payment intent.
    (charge,) = [
        c for c in client.v1.charges.list(params={"customer": customer}).data if c.amount == 2000
    ]
    intent = str(charge.payment_intent)
    (payment,) = client.v1.invoice_payments.list(
        params={"payment": {"type": "payment_intent", "payment_intent": intent}}
    ).data
    assert payment.invoice == draft.id
    refund = client.v1.refunds.create(params={"payment_intent": intent})
    assert refund.amount == 2000
    for obj in (tote, mug, paid.lines.data[1]):
        assert_declared_fields(obj)


def test_a_one_off_invoice_needs_a_payment_method_the_customer_has(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    customer = client.v1.customers.create(params={"email": "shop@example.org"}).id
    with pytest.raises(stripe.InvalidRequestError, match="No such PaymentMethod"):
        client.v1.invoices.create(
            params={"customer": customer, "default_payment_method": "pm_someone_elses"}
        )
    invoice = client.v1.invoices.create(params={"customer": customer, "currency": "eur"})
    client.v1.invoice_items.create(
        params={"customer": customer, "amount": 900, "currency": "eur", "invoice": invoice.id}
    )
    client.v1.invoices.finalize_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError, match="no attached payment source"):
        client.v1.invoices.pay(invoice.id)
    assert client.v1.invoices.retrieve(invoice.id).status == "open"


def test_paying_an_invoice_with_a_declining_card_is_a_card_error(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id)
    fake.renew(subscription.id, outcome="failed")
    invoice_id = str(client.v1.subscriptions.retrieve(subscription.id).latest_invoice)

    with pytest.raises(stripe.CardError) as declined:
        client.v1.invoices.pay(invoice_id)
    assert declined.value.http_status == 402 and declined.value.code == "card_declined"
    assert client.v1.invoices.retrieve(invoice_id).attempt_count == 2


def test_one_time_payment_checkout(client: stripe.StripeClient, fake: FakeStripe) -> None:
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 2500,
                        "product_data": {"name": "One-time gift"},
                    },
                    "quantity": 1,
                }
            ],
            "customer_email": "gift@example.org",
            "payment_intent_data": {"metadata": {"member_id": "9"}},
            "success_url": SUCCESS_URL,
        }
    )

    declined = fake.complete_checkout(session.id, outcome="declined")
    assert types_of(declined) == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
    ]
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    paid = fake.complete_checkout(session.id)
    assert types_of(paid) == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status, done.customer) == ("complete", "paid", None)
    intent = done.payment_intent
    assert isinstance(intent, stripe.PaymentIntent) and intent.status == "succeeded"
    assert intent.metadata["member_id"] == "9"
    charges = client.v1.charges.list(params={"payment_intent": intent.id}).data
    assert [c.status for c in charges] == ["succeeded", "failed"]
    assert charges[0].receipt_url and charges[0].id == intent.latest_charge


def test_changing_the_price_and_cancelling_at_period_end(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id)
    item = subscription["items"]["data"][0]
    product = item.price.product

    updated = client.v1.subscriptions.update(
        subscription.id,
        params={
            "items": [
                {
                    "id": item.id,
                    "price_data": {
                        "currency": "eur",
                        "product": str(product),
                        "unit_amount": 900,
                        "recurring": {"interval": "month"},
                    },
                }
            ],
            "proration_behavior": "none",
            "cancel_at_period_end": True,
            "cancellation_details": {"comment": "moving abroad"},
            "metadata": {"tier": "patron"},
        },
    )

    new_item = updated["items"]["data"][0]
    assert new_item.id == item.id and new_item.price.unit_amount == 900
    assert new_item.current_period_end == item.current_period_end  # same interval: same period
    assert updated.cancel_at_period_end is True
    assert updated.cancel_at == item.current_period_end
    assert updated.cancellation_details is not None
    assert updated.cancellation_details.comment == "moving abroad"
    (change,) = fake.events_of_type("customer.subscription.updated")[-1:]
    assert change["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert change["data"]["previous_attributes"]["items"]["data"][0]["price"]["unit_amount"] == 500

    ended = fake.renew(subscription.id)
    assert types_of(ended) == ["customer.subscription.deleted"]
    final = client.v1.subscriptions.retrieve(subscription.id)
    assert final.status == "canceled" and final.ended_at == item.current_period_end
    assert final.cancellation_details is not None
    assert final.cancellation_details.reason == "cancellation_requested"
    assert client.v1.subscriptions.list(params={"customer": str(final.customer)}).data == []
    everything = client.v1.subscriptions.list(
        params={"customer": str(final.customer), "status": "all"}
    )
    assert [s.id for s in everything.data] == [subscription.id]


def test_a_subscription_set_to_cancel_mid_period_ends_then(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id)
    cancel_at = fake.now() + 5 * 24 * 60 * 60
    scheduled = client.v1.subscriptions.update(subscription.id, params={"cancel_at": cancel_at})
    assert (scheduled.cancel_at, scheduled.cancel_at_period_end) == (cancel_at, False)
    assert scheduled.canceled_at is not None

    (ended,) = fake.renew(subscription.id)

    assert ended["type"] == "customer.subscription.deleted"
    assert ended["data"]["object"]["ended_at"] == cancel_at <= fake.now()
    assert ended["data"]["object"]["canceled_at"] == scheduled.canceled_at


def test_switching_to_a_yearly_price_restarts_the_period_and_invoices(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id)
    yearly = make_price(client, "supporter_yearly", amount=5000, interval="year")
    item = subscription["items"]["data"][0]
    fake.advance_clock(10 * 24 * 60 * 60)
    switched_at = fake.now()

    updated = client.v1.subscriptions.update(
        subscription.id, params={"items": [{"id": item.id, "price": yearly.id}]}
    )

    new_item = updated["items"]["data"][0]
    assert new_item.current_period_start == updated.billing_cycle_anchor
    assert switched_at <= updated.billing_cycle_anchor <= fake.now()
    assert new_item.current_period_end - new_item.current_period_start >= 365 * 24 * 60 * 60
    invoice = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert (invoice.billing_reason, invoice.status, invoice.total) == (
        "subscription_update",
        "paid",
        5000,
    )
    monthly_to_other_currency = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "year"},
            "product": str(yearly.product),
        }
    )
    with pytest.raises(stripe.InvalidRequestError, match="Currency and interval"):
        client.v1.subscriptions.update(
            subscription.id,
            params={"items": [{"id": item.id, "price": monthly_to_other_currency.id}]},
        )


def test_cancelling_now_and_the_end_of_a_past_due_subscription(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    price = make_price(client)
    cancelled = subscribe(client, fake, price.id)
    lapsed = subscribe(client, fake, price.id, email="sam@example.org")

    result = client.v1.subscriptions.cancel(
        cancelled.id, params={"cancellation_details": {"comment": "too expensive"}}
    )
    assert result.status == "canceled" and result.ended_at is not None
    assert result.cancellation_details is not None
    assert result.cancellation_details.comment == "too expensive"
    assert fake.events[-1]["type"] == "customer.subscription.deleted"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(cancelled.id, params={"cancel_at_period_end": True})

    fake.renew(lapsed.id, outcome="failed")
    (gave_up,) = fake.end_subscription(lapsed.id)
    assert gave_up["type"] == "customer.subscription.deleted"
    assert gave_up["data"]["object"]["cancellation_details"]["reason"] == "payment_failed"
    with pytest.raises(ValueError, match="already ended"):
        fake.end_subscription(lapsed.id)


def test_cancelling_now_stops_collecting_the_open_invoice(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id, email="lee@example.org")
    fake.renew(subscription.id, outcome="failed")
    invoice_id = fake.get(subscription.id)["latest_invoice"]
    unpaid = client.v1.invoices.retrieve(invoice_id)
    assert unpaid.status == "open" and unpaid.auto_advance and unpaid.next_payment_attempt

    client.v1.subscriptions.cancel(subscription.id)
    stopped = client.v1.invoices.retrieve(invoice_id)
    assert stopped.status == "open"  # still owed, and payable by hand
    assert stopped.auto_advance is False and stopped.next_payment_attempt is None
    assert types_of(fake.events[-2:]) == ["customer.subscription.deleted", "invoice.updated"]


def test_listing_invoices_payments_and_paging_events(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id)
    fake.renew(subscription.id)

    invoices = client.v1.invoices.list(params={"subscription": subscription.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_cycle", "subscription_create"]
    payments = client.v1.invoice_payments.list(params={"invoice": invoices[0].id}).data
    assert [p.invoice for p in payments] == [invoices[0].id]
    by_customer = client.v1.invoices.list(params={"customer": str(subscription.customer)})
    assert len(by_customer.data) == 2

    all_events = fake.events
    page = client.v1.events.list(params={"limit": 3})
    assert page.has_more and [e.id for e in page.data] == [e["id"] for e in all_events[::-1][:3]]
    assert [e.id for e in page.auto_paging_iter()] == [e["id"] for e in reversed(all_events)]
    paid = client.v1.events.list(params={"type": "invoice.paid"}).data
    assert len(paid) == 2 and all(isinstance(e.data.object, stripe.Invoice) for e in paid)


def _paid_charge(
    client: stripe.StripeClient, fake: FakeStripe, lookup_key: str = "supporter_monthly"
) -> stripe.Charge:
    subscription = subscribe(client, fake, make_price(client, lookup_key).id)
    (charge,) = client.v1.charges.list(params={"customer": str(subscription.customer)}).data
    return charge


def test_a_chargeback_withdraws_its_funds_at_once_and_blocks_refunds(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    charge = _paid_charge(client, fake)

    opened, withdrawn = fake.dispute(charge.id)

    assert types_of([opened, withdrawn]) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    dispute = client.v1.disputes.retrieve(opened["data"]["object"]["id"])
    assert isinstance(dispute, stripe.Dispute) and dispute.id.startswith("dp_")
    assert (dispute.charge, dispute.amount, dispute.status) == (charge.id, 500, "needs_response")
    assert dispute.is_charge_refundable is False
    assert dispute.evidence_details.due_by == opened["created"] + 7 * 24 * 3600
    (txn,) = dispute.balance_transactions
    assert isinstance(txn, stripe.BalanceTransaction)
    assert (txn.amount, txn.fee, txn.net, txn.currency) == (-500, 1500, -2000, "eur")
    assert (txn.reporting_category, txn.source) == ("dispute", dispute.id)
    assert client.v1.charges.retrieve(charge.id).disputed is True
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params={"charge": charge.id})
    assert refused.value.code == "charge_disputed"
    with pytest.raises(ValueError, match="cannot be disputed"):
        fake.dispute(charge.id)


def test_evidence_puts_a_dispute_under_review_and_a_win_reinstates_the_funds(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    charge = _paid_charge(client, fake)
    dispute_id = fake.dispute(charge.id)[0]["data"]["object"]["id"]

    staged = client.v1.disputes.update(
        dispute_id, params={"evidence": {"uncategorized_text": "Read daily."}, "submit": False}
    )
    assert (staged.status, staged.evidence_details.has_evidence) == ("needs_response", True)
    submitted = client.v1.disputes.update(dispute_id, params={"evidence": {"customer_name": "Pat"}})
    assert submitted.status == "under_review"
    assert submitted.evidence.uncategorized_text == "Read daily."
    assert submitted.evidence_details.submission_count == 1
    updated = fake.events_of_type("charge.dispute.updated")[-1]
    assert updated["data"]["previous_attributes"]["status"] == "needs_response"
    with pytest.raises(stripe.InvalidRequestError, match="under review"):
        client.v1.disputes.close(dispute_id)

    events = fake.resolve_dispute(dispute_id, "won")

    assert types_of(events) == ["charge.dispute.funds_reinstated", "charge.dispute.closed"]
    won = client.v1.disputes.retrieve(dispute_id)
    assert won.status == "won"
    assert [(t.amount, t.fee, t.reporting_category) for t in won.balance_transactions] == [
        (-500, 1500, "dispute"),
        (500, 0, "dispute_reversal"),
    ]
    with pytest.raises(ValueError, match="already won"):
        fake.resolve_dispute(dispute_id, "lost")
    with pytest.raises(stripe.InvalidRequestError, match="already closed"):
        client.v1.disputes.update(dispute_id, params={"evidence": {"customer_name": "Pat"}})


def test_accepting_a_dispute_loses_it_and_keeps_the_funds_withdrawn(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    charge = _paid_charge(client, fake)
    dispute_id = fake.dispute(charge.id)[0]["data"]["object"]["id"]

    lost = client.v1.disputes.close(dispute_id)

    assert lost.status == "lost" and len(lost.balance_transactions) == 1
    assert types_of(fake.events[-1:]) == ["charge.dispute.closed"]


def test_an_inquiry_withdraws_nothing_until_it_becomes_a_chargeback(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    first, second = _paid_charge(client, fake), _paid_charge(client, fake, "second")

    (opened,) = fake.dispute(first.id, inquiry=True)
    inquiry = client.v1.disputes.retrieve(opened["data"]["object"]["id"])
    assert (inquiry.status, inquiry.balance_transactions) == ("warning_needs_response", [])
    assert inquiry.is_charge_refundable is True
    assert client.v1.refunds.create(params={"charge": first.id, "amount": 100}).amount == 100
    assert types_of(fake.resolve_dispute(inquiry.id, "won")) == ["charge.dispute.closed"]
    assert client.v1.disputes.retrieve(inquiry.id).status == "warning_closed"

    escalated_id = fake.dispute(second.id, inquiry=True)[0]["data"]["object"]["id"]
    events = fake.resolve_dispute(escalated_id, "lost")
    assert types_of(events) == ["charge.dispute.updated", "charge.dispute.funds_withdrawn"]
    escalated = client.v1.disputes.retrieve(escalated_id)
    assert (escalated.status, escalated.is_charge_refundable) == ("needs_response", False)
    assert [t.amount for t in escalated.balance_transactions] == [-500]


# ---- webhooks and shapes -------------------------------------------------------------------


def test_signed_payloads_verify_with_the_sdk_and_tampering_does_not(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    session = open_session(client, make_price(client).id)
    event = fake.complete_checkout(session.id)[-1]
    payload = event_payload(event)

    verified = client.construct_event(
        payload, sign_payload(payload, WEBHOOK_SECRET), WEBHOOK_SECRET
    )
    assert verified.id == event["id"] and verified.type == "checkout.session.completed"
    assert isinstance(verified.data.object, CheckoutSession)
    assert (
        stripe.Webhook.construct_event(
            payload, sign_payload(payload, WEBHOOK_SECRET), WEBHOOK_SECRET
        ).id
        == event["id"]
    )
    body, headers = fake.webhook_request(event, WEBHOOK_SECRET)
    assert (
        client.construct_event(body, headers["Stripe-Signature"], WEBHOOK_SECRET).id == event["id"]
    )

    header = sign_payload(payload, WEBHOOK_SECRET)
    tampered = payload.replace(b'"livemode": false', b'"livemode": true', 1)
    with pytest.raises(stripe.SignatureVerificationError):
        client.construct_event(tampered, header, WEBHOOK_SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        client.construct_event(payload, header, "whsec_someone_else")
    stale = sign_payload(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 600)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        client.construct_event(payload, stale, WEBHOOK_SECRET)


# Fields the SDK declares that a plain retrieve leaves out: includable ones (sent only when
# expanded), ``deleted`` (only on deleted objects) and Connect-only event fields.
NOT_IN_A_PLAIN_RETRIEVE = {
    stripe.Customer: {
        "cash_balance",
        "deleted",
        "invoice_credit_balance",
        "sources",
        "subscriptions",
        "tax",
        "tax_ids",
    },
    stripe.Product: {"deleted"},
    stripe.Price: {"currency_options", "deleted", "tiers"},
    stripe.Plan: {"deleted", "tiers"},
    stripe.SubscriptionItem: {"deleted"},
    stripe.Invoice: {"deleted", "payments"},
    stripe.InvoiceItem: {"deleted"},
    stripe.Charge: {"refunds"},
    CheckoutSession: {"line_items"},
    stripe.Event: {"account", "context"},
}


def test_payloads_carry_every_field_the_sdk_declares(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    subscription = subscribe(client, fake, make_price(client).id)
    invoice = client.v1.invoices.retrieve(str(subscription.latest_invoice))
    (payment,) = client.v1.invoice_payments.list(params={"invoice": invoice.id}).data
    intent = client.v1.payment_intents.retrieve(str(payment.payment.payment_intent))
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 100})
    fake.dispute(charge.id)
    customer = client.v1.customers.retrieve(str(subscription.customer))
    assert isinstance(customer, stripe.Customer)
    item = subscription["items"]["data"][0]
    objects: list[Any] = [
        customer,
        client.v1.products.retrieve(str(item.price.product)),
        item.price,
        item.plan,
        item,
        subscription,
        invoice,
        invoice.lines.data[0],
        payment,
        intent,
        charge,
        refund,
        client.v1.disputes.list().data[0],
        client.v1.checkout.sessions.list().data[0],
        client.v1.billing_portal.sessions.create(params={"customer": customer.id}),
        client.v1.events.list().data[0],
    ]

    for obj in objects:
        assert_declared_fields(obj)


def assert_declared_fields(obj: Any) -> None:
    """The object carries every field its SDK class declares (see NOT_IN_A_PLAIN_RETRIEVE),
    and no other."""
    declared = {
        name
        for name, annotation in type(obj).__annotations__.items()
        if "ClassVar" not in str(annotation)
    }
    expected = declared - NOT_IN_A_PLAIN_RETRIEVE.get(type(obj), set())
    missing = expected - set(obj.to_dict())
    assert not missing, f"{type(obj).__name__} lacks {sorted(missing)}"
    assert not set(obj.to_dict()) - declared, f"{type(obj).__name__} has undeclared fields"


def test_a_latency_delays_every_call_and_calls_wait_side_by_side(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    fake.latency = 0.2
    try:
        started = time.perf_counter()
        threads = [
            threading.Thread(target=lambda: client.v1.customers.list(params={"limit": 1}))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        elapsed = time.perf_counter() - started
    finally:
        fake.latency = 0.0
    assert 0.2 <= elapsed < 0.6  # four calls of 200 ms each, at once
