"""POST /stripe/webhook: signatures, once-only recording, answered before any call to Stripe,
unknown types, failures kept and retried by the event's job, and replay."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters import jobs
from supporters.billing import payments
from supporters.billing.models import Payment, StripeEvent, Subscription
from supporters.billing.webhooks import EVENT_JOB, HANDLERS
from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.models import Job, JobState
from supporters.jobs.worker import Worker
from supporters.members.models import Member
from tests.billing.conftest import WEBHOOK_SECRET, Webhooks
from tests.billing.fake_stripe import FakeStripe, event_payload, sign_payload
from tests.billing.test_stripe import count, join
from tests.conftest import run_jobs


def _event_jobs() -> list[Job]:
    """The jobs of webhook events (not the app's mail or periodic jobs)."""
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Job).where(Job.kind == EVENT_JOB)))


def _paid_checkout(fake: FakeStripe, client: FlaskClient) -> list[dict[str, Any]]:
    return fake.complete_checkout(join(client, tier="reader", interval="month"))


def _failed_delivery(
    fake: FakeStripe, client: FlaskClient, webhooks: Webhooks, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A paid checkout's invoice.paid, delivered once (answered 200); its job fails."""
    invoice_paid = [e for e in _paid_checkout(fake, client) if e["type"] == "invoice.paid"][-1]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database hiccup")

    with monkeypatch.context() as patch:
        patch.setattr(payments, "record_invoice", broken)
        assert webhooks.deliver(invoice_paid) == [200]
    return invoice_paid


def _deliver_at_once(
    app: Flask, fake: FakeStripe, event: dict[str, Any], deliveries: int
) -> list[int]:
    """The same signed event posted on ``deliveries`` connections at once; their statuses."""
    body, headers = fake.webhook_request(event, WEBHOOK_SECRET)
    start = threading.Barrier(deliveries)
    statuses: list[int] = []
    lock = threading.Lock()

    def deliver() -> None:
        client = app.test_client()
        start.wait()
        status = client.post("/stripe/webhook", data=body, headers=headers).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=deliver) for _ in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def _post(client: FlaskClient, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/stripe/webhook", data=body, headers=headers)


def test_signatures_are_verified_on_the_raw_body(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    event = _paid_checkout(fake_stripe, patron[1])[-1]
    body = event_payload(event)
    client = stripe_app.test_client()
    assert _post(client, body, None).status_code == 400
    assert _post(client, body, sign_payload(body, "whsec_wrong")).status_code == 400
    stale = sign_payload(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    assert _post(client, body, stale).status_code == 400
    tampered = body.replace(b'"livemode": false', b'"livemode": true')
    assert tampered != body
    assert _post(client, tampered, sign_payload(body, WEBHOOK_SECRET)).status_code == 400
    # Re-serialising the same JSON differently breaks the signature: the raw bytes count.
    reformatted = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reformatted != body
    assert _post(client, reformatted, sign_payload(body, WEBHOOK_SECRET)).status_code == 400
    assert count(StripeEvent) == 0
    assert _post(client, body, sign_payload(body, WEBHOOK_SECRET)).status_code == 200
    assert count(StripeEvent) == 1


def test_a_rotated_secret_and_the_new_one_both_verify(
    make_app: Any, fake_stripe: FakeStripe
) -> None:
    app = make_app(
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_API_BASE=fake_stripe.api_base,
        STRIPE_WEBHOOK_SECRET=["whsec_old", "whsec_new"],
    )
    body = event_payload(
        {
            "id": "evt_rotation",
            "object": "event",
            "type": "balance.available",
            "api_version": "2026-10-28.endive",
            "livemode": False,
            "data": {"object": {"id": "bal", "object": "balance"}},
        }
    )
    client = app.test_client()
    assert _post(client, body, sign_payload(body, "whsec_old")).json["outcome"] == "ignored"
    assert _post(client, body, sign_payload(body, "whsec_new")).json["outcome"] == "duplicate"


def test_unknown_types_are_recorded_and_answered_200(stripe_app: Flask, webhooks: Webhooks) -> None:
    event = {
        "id": "evt_unknown",
        "object": "event",
        "type": "customer.tax_id.created",
        "api_version": "2026-10-28.endive",
        "livemode": False,
        "data": {
            "object": {
                "id": "txi_1",
                "object": "tax_id",
                "client_secret": "pi_1_secret_a",
                # Secrets nest too, as an invoice's confirmation_secret does.
                "lines": [{"confirmation_secret": {"client_secret": "pi_2_secret_b"}}],
            }
        },
    }
    assert webhooks.deliver(event) == [200]
    row = db.session.scalars(sa.select(StripeEvent)).one()
    assert row.type == "customer.tax_id.created" and row.processed_at is not None
    assert "_secret_" not in json.dumps(row.payload)
    assert row.payload["data"]["object"]["lines"] == [{"confirmation_secret": {}}]


def test_events_that_can_never_be_processed_are_not_failures(
    stripe_app: Flask, fake_stripe: FakeStripe
) -> None:
    client = stripe_app.test_client()

    def post(event: dict[str, Any]) -> Any:
        body, headers = fake_stripe.webhook_request(event, WEBHOOK_SECRET)
        return client.post("/stripe/webhook", data=body, headers=headers)

    event = {
        "id": "evt_no_object_id",
        "object": "event",
        "type": "customer.subscription.updated",
        "api_version": "2026-10-28.endive",
        "livemode": False,
        "data": {"object": {"object": "subscription", "status": "active"}},
    }
    # No retry can give it the id it lacks: answered 2xx, so Stripe stops, and kept, with why.
    response = post(event)
    assert (response.status_code, response.json["outcome"]) == (200, "ignored")
    row = db.session.scalars(sa.select(StripeEvent)).one()
    assert row.processed_at is not None and row.error == ""
    assert row.ignored_reason == "the event names no subscription"

    # A type longer than any Stripe sends is refused as a bad request, and nothing is kept.
    response = post({**event, "id": "evt_long_type", "type": "customer." + "x" * 100})
    assert response.status_code == 400
    assert response.json == {"error": "the event's id, type or API version is too long"}
    assert count(StripeEvent) == 1


def test_a_failed_event_keeps_its_error_and_is_replayed(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice_paid = _failed_delivery(fake_stripe, patron[1], webhooks, monkeypatch)
    row = db.session.scalars(sa.select(StripeEvent)).one()
    assert row.processed_at is None and "database hiccup" in row.error and row.attempts == 1
    # Nothing the failed handler did is kept: the subscription it synced first was rolled back.
    assert (count(Subscription), count(Payment)) == (0, 0)

    result = stripe_app.test_cli_runner().invoke(args=["billing", "replay-events"])
    assert result.exit_code == 0 and "processed: 1" in result.output
    db.session.expire_all()
    assert row.processed_at is not None and row.error == "" and row.attempts == 2
    assert (count(Subscription), count(Payment)) == (1, 1)
    # Stripe's own retry now arrives: a duplicate that does nothing.
    assert webhooks.deliver(invoice_paid) == [200]
    assert count(Payment) == 1


@pytest.mark.postgres_only
def test_the_same_event_50_times_at_once_gives_one_payment(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    events = _paid_checkout(fake_stripe, patron[1])
    invoice_paid = [e for e in events if e["type"] == "invoice.paid"][-1]
    statuses = _deliver_at_once(stripe_app, fake_stripe, invoice_paid, 50)
    assert statuses == [200] * 50
    assert len(_event_jobs()) == 1
    run_jobs(stripe_app)
    assert (count(StripeEvent), count(Subscription), count(Payment)) == (1, 1, 1)
    outcomes = db.session.scalars(sa.select(StripeEvent.attempts)).one()
    assert outcomes == 1  # processed once; 49 deliveries found it done


def test_an_event_of_a_customer_no_member_has_is_kept_as_ignored(
    stripe_app: Flask, fake_stripe: FakeStripe, webhooks: Webhooks, synced_tiers: None
) -> None:
    stripe = stripe_app.extensions["stripe_client"]
    customer = stripe.v1.customers.create(params={"email": "dashboard@example.org"})
    price = stripe.v1.prices.list(params={"limit": 1}).data[0]
    session = stripe.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://127.0.0.1/done",
        }
    )
    events = fake_stripe.complete_checkout(session.id)
    created = [e for e in events if e["type"] == "customer.subscription.created"][-1]
    assert webhooks.deliver(created) == [200]
    row = db.session.scalars(sa.select(StripeEvent)).one()
    assert row.processed_at is not None and row.attempts == 1 and row.error == ""
    assert row.ignored_reason == f"customer {customer.id} belongs to no member here"
    assert count(Subscription) == 0
    # Stripe's retry is a duplicate: not processed again, the reason kept.
    assert webhooks.deliver(created) == [200]
    db.session.expire_all()
    assert row.attempts == 1 and row.ignored_reason.startswith("customer")


@pytest.mark.postgres_only
def test_redeliveries_of_a_failed_event_at_once_leave_it_to_its_job(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice_paid = _failed_delivery(fake_stripe, patron[1], webhooks, monkeypatch)
    # Deliveries of an event recorded already do nothing, however many race: no second job.
    statuses = _deliver_at_once(stripe_app, fake_stripe, invoice_paid, 20)
    assert statuses == [200] * 20
    assert len(_event_jobs()) == 1
    # The job's retry, when its backoff is over, processes it once.
    Worker(stripe_app, clock=lambda: utcnow() + dt.timedelta(hours=2)).run(once=True)
    assert (count(StripeEvent), count(Subscription), count(Payment)) == (1, 1, 1)
    row = db.session.scalars(sa.select(StripeEvent)).one()
    assert row.processed_at is not None and row.attempts == 2 and row.error == ""


def test_each_handled_event_costs_one_request_to_stripe(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    events = _paid_checkout(fake_stripe, patron[1])
    seen = len(fake_stripe.requests)
    assert set(webhooks.deliver(*events)) == {200}

    asked = [(r.method, r.path, r.params.get("expand")) for r in fake_stripe.requests[seen:]]
    handled = [e for e in events if e["type"] in HANDLERS]
    assert len(asked) == len(handled)
    # Invoices and Checkout sessions come with what their handlers need, expanded.
    invoice_id = next(e for e in events if e["type"] == "invoice.paid")["data"]["object"]["id"]
    expand = ["payments", "parent.subscription_details.subscription"]
    assert ("GET", f"/v1/invoices/{invoice_id}", expand) in asked
    session = next(e for e in events if e["type"] == "checkout.session.completed")
    session_id = session["data"]["object"]["id"]
    assert (
        "GET",
        f"/v1/checkout/sessions/{session_id}",
        ["subscription.latest_invoice.payments", "payment_intent.latest_charge"],
    ) in asked
    assert count(Payment) == 1
    assert db.session.scalars(sa.select(Subscription.status)).one() == "active"


def _hanging_up_server(answers: int) -> tuple[str, list[int], threading.Thread]:
    """A server on 127.0.0.1 that reads each request and hangs up without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    accepted: list[int] = []

    def serve() -> None:
        with listener:
            for number in range(answers):
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    return
                with connection:
                    connection.recv(65536)
                accepted.append(number)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", accepted, thread


def _point_stripe_at(app: Flask, api_base: str) -> None:
    """Send the app's Stripe requests to ``api_base`` (its client is built again)."""
    app.config["STRIPE_API_BASE"] = api_base
    app.extensions.pop("stripe_client", None)


def test_a_webhook_is_answered_while_stripe_is_unreachable_and_processed_once_it_is_back(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    invoice_paid = [
        e for e in _paid_checkout(fake_stripe, patron[1]) if e["type"] == "invoice.paid"
    ]
    api_base, accepted, server = _hanging_up_server(answers=3)
    _point_stripe_at(stripe_app, api_base)

    # Answered at once: the request asks Stripe nothing.
    assert webhooks.deliver(*invoice_paid, drain=False) == [200]
    assert accepted == [] and len(_event_jobs()) == 1

    run_jobs(stripe_app)  # the worker's attempt: Stripe hangs up
    server.join(timeout=10)
    assert len(accepted) == 3  # the first request and the SDK's two retries
    row = db.session.scalars(sa.select(StripeEvent)).one()
    assert row.processed_at is None and row.error.startswith("APIConnectionError")
    assert row.attempts == 1 and count(Payment) == 0
    [job] = _event_jobs()
    assert job.state is JobState.FAILED and job.run_at > utcnow()

    # Stripe is back; the job's retry processes the event once its backoff is over.
    _point_stripe_at(stripe_app, fake_stripe.api_base)
    Worker(stripe_app, clock=lambda: utcnow() + dt.timedelta(hours=2)).run(once=True)
    db.session.expire_all()
    assert row.processed_at is not None and row.error == "" and row.attempts == 2
    assert count(Payment) == 1
    assert [job.state for job in _event_jobs()] == [JobState.DONE]


def test_an_event_whose_transaction_rolls_back_leaves_no_job(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice_paid = [
        e for e in _paid_checkout(fake_stripe, patron[1]) if e["type"] == "invoice.paid"
    ]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database hiccup")

    with monkeypatch.context() as patch:
        # The event is inserted, then its job's INSERT fails: the request rolls back.
        patch.setattr(jobs, "enqueue", broken)
        with pytest.raises(RuntimeError):
            webhooks.deliver(*invoice_paid, drain=False)
    assert (count(StripeEvent), len(_event_jobs())) == (0, 0)
    # Stripe delivers it again (it had no 2xx): recorded, queued and processed.
    assert webhooks.deliver(*invoice_paid) == [200]
    assert (count(StripeEvent), len(_event_jobs()), count(Payment)) == (1, 1, 1)


def test_replay_can_queue_the_failed_events_for_the_workers(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _failed_delivery(fake_stripe, patron[1], webhooks, monkeypatch)
    result = stripe_app.test_cli_runner().invoke(args=["billing", "replay-events", "--enqueue"])
    assert result.exit_code == 0 and "Queued 1 event(s) for the workers." in result.output
    assert count(Payment) == 0
    run_jobs(stripe_app)  # due at once: the retry reset its backoff
    assert count(Payment) == 1
