"""Disputes move money: what a cardholder's bank withdraws counts against money received.

Driven as in production: the real SDK and gateway against the test Stripe server, whose
disputes withdraw and reinstate funds as Stripe's do, and signed webhooks.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing.models import Dispute, DisputeStatus, Payment, PaymentKind, StripeEvent
from supporters.extensions import db
from supporters.members.models import Member
from supporters.staff.models import month_number
from supporters.staff.queries import monthly
from tests.billing.conftest import WEBHOOK_SECRET, Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import count, join
from tests.conftest import run_jobs
from tests.helpers import text
from tests.staff.test_rollups import rebuilt_matches


def _sdk(app: Flask) -> stripe.StripeClient:
    """The app's own Stripe client: what staff do in Stripe's dashboard, done through the API."""
    return app.extensions["stripe_client"]  # type: ignore[no-any-return]


def _charge_of(fake: FakeStripe, payment: Payment) -> str:
    assert payment.stripe_payment_intent_id
    return str(fake.get(payment.stripe_payment_intent_id)["latest_charge"])


def _dispute(stripe_dispute_id: str) -> Dispute:
    db.session.expire_all()
    return db.session.scalars(
        sa.select(Dispute).where(Dispute.stripe_dispute_id == stripe_dispute_id)
    ).one()


def _month_of(payment: Payment) -> monthly.RevenueMonth:
    assert payment.paid_at is not None
    (month,) = monthly.revenue_months([month_number(payment.paid_at)])[payment.currency]
    return month


def test_a_chargeback_withdraws_the_payment_until_it_is_won(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    _, client = patron
    webhooks.deliver(*fake_stripe.complete_checkout(join(client, tier="reader", interval="month")))
    payment = db.session.scalars(sa.select(Payment)).one()
    before = _month_of(payment)

    opened = fake_stripe.dispute(_charge_of(fake_stripe, payment), reason="fraudulent")
    assert set(webhooks.deliver(*opened)) == {200}

    dispute_id = opened[0]["data"]["object"]["id"]
    dispute = _dispute(dispute_id)
    due_by = fake_stripe.get(dispute_id)["evidence_details"]["due_by"]
    assert (dispute.status, dispute.amount, dispute.currency, dispute.reason) == (
        DisputeStatus.NEEDS_RESPONSE,
        500,
        "EUR",
        "fraudulent",
    )
    assert dispute.evidence_due_at == dt.datetime.fromtimestamp(due_by, dt.UTC)
    assert (dispute.withdrawn_amount, dispute.payment_id, dispute.closed_at) == (
        500,
        payment.id,
        None,
    )
    db.session.refresh(payment)
    assert (payment.disputed_amount, payment.refunded_amount) == (500, 0)
    withdrawn = _month_of(payment)
    # Counted apart from refunds; Stripe's dispute fee is not revenue and is not counted.
    assert (withdrawn.disputed, withdrawn.refunded) == (500, 0)
    assert withdrawn.received == before.received - 500

    # Staff send evidence in Stripe; the bank reviews it, then decides for the newsroom.
    _sdk(stripe_app).v1.disputes.update(
        dispute_id, params={"evidence": {"uncategorized_text": "Read every day since May."}}
    )
    webhooks.deliver(*fake_stripe.events_of_type("charge.dispute.updated"))
    assert _dispute(dispute_id).status is DisputeStatus.UNDER_REVIEW
    won = fake_stripe.resolve_dispute(dispute_id, "won")
    assert [e["type"] for e in won] == ["charge.dispute.funds_reinstated", "charge.dispute.closed"]
    assert set(webhooks.deliver(*won)) == {200}

    dispute = _dispute(dispute_id)
    assert dispute.status is DisputeStatus.WON and dispute.closed_at is not None
    assert dispute.withdrawn_amount == 0
    assert db.session.get_one(Payment, payment.id).disputed_amount == 0
    assert _month_of(payment) == before
    rebuilt_matches()


def test_a_lost_dispute_stays_withdrawn_whatever_order_its_events_arrive_in(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    _, client = patron
    webhooks.deliver(
        *fake_stripe.complete_checkout(join(client, tier="custom", amount="25", interval="once"))
    )
    gift = db.session.scalars(sa.select(Payment)).one()
    assert gift.kind is PaymentKind.ONE_TIME
    # A charge of another app on the same Stripe account is disputed too: not ours.
    theirs = _sdk(stripe_app).v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 900,
                        "product_data": {"name": "Tote bag"},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": "https://shop.example/thanks",
        }
    )
    fake_stripe.complete_checkout(theirs.id)
    their_charge = fake_stripe.get(str(fake_stripe.get(theirs.id)["payment_intent"]))[
        "latest_charge"
    ]

    events: list[dict[str, Any]] = fake_stripe.dispute(_charge_of(fake_stripe, gift))
    dispute_id = events[0]["data"]["object"]["id"]
    _sdk(stripe_app).v1.disputes.close(dispute_id)  # staff accept it in Stripe
    events += fake_stripe.events_of_type("charge.dispute.closed")
    theirs_events = fake_stripe.dispute(their_charge)
    events += theirs_events
    assert set(webhooks.deliver(*reversed(events), *events)) == {200}

    assert count(Dispute) == 1
    theirs_recorded = db.session.scalars(
        sa.select(StripeEvent).where(StripeEvent.stripe_event_id == theirs_events[0]["id"])
    ).one()
    assert "none of our payments" in theirs_recorded.ignored_reason
    dispute = _dispute(dispute_id)
    assert (dispute.status, dispute.withdrawn_amount) == (DisputeStatus.LOST, 2500)
    assert dispute.closed_at is not None
    db.session.refresh(gift)
    assert (gift.disputed_amount, gift.refunded_amount, gift.disputed_at) == (
        2500,
        0,
        dispute.opened_at,
    )
    month = _month_of(gift)
    assert (month.gifts, month.refunded, month.disputed, month.received) == (2500, 0, 2500, 0)
    assert "Taken back by your bank (€25.00)" in text(client.get("/account/support"))
    rebuilt_matches()


def test_an_inquiry_withdraws_nothing_until_the_bank_charges_back(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    _, client = patron
    webhooks.deliver(*fake_stripe.complete_checkout(join(client, tier="reader", interval="month")))
    payment = db.session.scalars(sa.select(Payment)).one()

    opened = fake_stripe.dispute(_charge_of(fake_stripe, payment), inquiry=True)
    webhooks.deliver(*opened)
    dispute_id = opened[0]["data"]["object"]["id"]
    inquiry = _dispute(dispute_id)
    assert (inquiry.status, inquiry.withdrawn_amount) == (DisputeStatus.WARNING_NEEDS_RESPONSE, 0)
    assert inquiry.status.is_open and inquiry.evidence_due_at is not None
    assert db.session.get_one(Payment, payment.id).disputed_amount == 0

    webhooks.deliver(*fake_stripe.resolve_dispute(dispute_id, "lost"))
    chargeback = _dispute(dispute_id)
    assert (chargeback.status, chargeback.withdrawn_amount) == (DisputeStatus.NEEDS_RESPONSE, 500)
    assert db.session.get_one(Payment, payment.id).disputed_amount == 500
    rebuilt_matches()


@pytest.mark.postgres_only
def test_a_dispute_s_events_arriving_at_once_record_it_once(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    """Stripe sends charge.dispute.created and .funds_withdrawn together: neither fails."""
    _, client = patron
    webhooks.deliver(*fake_stripe.complete_checkout(join(client, tier="reader", interval="month")))
    payment = db.session.scalars(sa.select(Payment)).one()
    events = fake_stripe.dispute(_charge_of(fake_stripe, payment)) * 3
    start = threading.Barrier(len(events))
    statuses: list[int] = []

    def deliver(event: dict[str, Any]) -> None:
        body, headers = fake_stripe.webhook_request(event, WEBHOOK_SECRET)
        sender = stripe_app.test_client()
        start.wait()
        statuses.append(sender.post("/stripe/webhook", data=body, headers=headers).status_code)

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Workers take them all at once, as they arrived.
    run_jobs(stripe_app, concurrency=len(events))

    assert statuses == [200] * len(events)
    assert count(Dispute) == 1
    assert db.session.get_one(Payment, payment.id).disputed_amount == 500
    rebuilt_matches()
