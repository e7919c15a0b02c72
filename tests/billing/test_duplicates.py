"""A member never pays twice: one open Checkout Session per member, and a second live
subscription, should one still appear, is cancelled and refunded.

Checkout Sessions stay payable for 24 hours, so two tabs of the support page are two ways to pay.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.audit import AuditEntry
from supporters.billing import figures
from supporters.billing.membership import MembershipStatus, membership_of
from supporters.billing.models import (
    Customer,
    Payment,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from supporters.extensions import db
from supporters.members.models import Member, Role
from tests.billing.conftest import WEBHOOK_SECRET, Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import count, join, posts, the_subscription
from tests.conftest import run_jobs
from tests.factories import make_member, signed_in_client
from tests.helpers import submit, text


def test_a_second_tab_s_checkout_expires_the_first(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    first = join(client, tier="reader", interval="month")
    second = join(client, tier="supporter", interval="month")

    def status_of(page: str) -> str:
        return str(fake_stripe.get(page.rsplit("/", 1)[1])["status"])

    assert fake_stripe.get(first)["status"] == "expired"
    with pytest.raises(ValueError, match="not open"):
        fake_stripe.complete_checkout(first)  # the first tab's page no longer takes payment
    assert set(webhooks.deliver(*fake_stripe.complete_checkout(second))) == {200}
    assert (count(Subscription), the_subscription().amount) == (1, 1000)
    assert membership_of(member.id) is MembershipStatus.ACTIVE

    # A double click submits the same form twice: the same open page, nothing expired.
    gift = {"tier": "custom", "amount": "20", "interval": "once", "attempt": "double-click"}
    pages = [submit(client, "/", action="/support", **gift).headers["Location"] for _ in "12"]
    assert pages[0] == pages[1]
    assert status_of(pages[0]) == "open"
    # Back to that form after another tab closed its page: submitting it opens a new one.
    submit(client, "/", action="/support", **{**gift, "attempt": "another-tab"})
    again = submit(client, "/", action="/support", **gift).headers["Location"]
    assert (status_of(pages[0]), status_of(again)) == ("expired", "open")


def test_paying_one_tab_then_submitting_the_other_is_refused(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    first = join(client, tier="reader", interval="month")
    fake_stripe.complete_checkout(first)  # paid; no webhook has arrived yet

    again = submit(client, "/", action="/support", tier="supporter", interval="month")

    assert again.headers["Location"] == "/account/support"
    assert len(posts(fake_stripe, "/v1/checkout/sessions")) == 1
    # What Stripe said of the first tab is recorded at once, not left for the webhook.
    assert the_subscription().status is SubscriptionStatus.ACTIVE
    assert membership_of(member.id) is MembershipStatus.ACTIVE


def _pay_two_checkouts(stripe_app: Flask, fake: FakeStripe, client: FlaskClient) -> list[Any]:
    """The member's own checkout, and a second one for the same customer that got past the
    one-open-session guard (as two starts at once can where rows cannot be locked), paid a
    minute later; the events of both, in order."""
    first = join(client, tier="reader", interval="month")
    customer_id = db.session.scalars(sa.select(Customer.stripe_customer_id)).one()
    reader = db.session.scalars(sa.select(Tier).where(Tier.slug == "reader")).one()
    member_id = db.session.scalars(sa.select(Customer.member_id)).one()
    metadata = {"member_id": str(member_id), "tier": "reader", "interval": "month"}
    second = stripe_app.extensions["stripe_client"].v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer_id,
            "line_items": [{"price": reader.stripe_monthly_price_id, "quantity": 1}],
            "client_reference_id": str(member_id),
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
            "success_url": "http://localhost/support/welcome?session_id={CHECKOUT_SESSION_ID}",
        }
    )
    events = fake.complete_checkout(first)
    fake.advance_clock(60)
    return events + fake.complete_checkout(second.id)


def _subscription_ids(fake: FakeStripe) -> list[str]:
    return [e["data"]["object"]["id"] for e in fake.events_of_type("customer.subscription.created")]


def test_a_second_live_subscription_is_cancelled_and_refunded(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    events = _pay_two_checkouts(stripe_app, fake_stripe, client)
    kept, newer = _subscription_ids(fake_stripe)

    assert set(webhooks.deliver(*events)) == {200}

    assert fake_stripe.get(kept)["status"] == "active"
    assert fake_stripe.get(newer)["status"] == "canceled"
    stripe = stripe_app.extensions["stripe_client"]
    charges = stripe.v1.charges.list(params={"customer": fake_stripe.get(newer)["customer"]}).data
    assert sorted((c.amount, c.amount_refunded) for c in charges) == [(500, 0), (500, 500)]
    db.session.expire_all()
    statuses = dict(
        db.session.execute(
            sa.select(Subscription.stripe_subscription_id, Subscription.status)
        ).all()
    )
    assert statuses == {kept: SubscriptionStatus.ACTIVE, newer: SubscriptionStatus.CANCELED}
    assert sorted(db.session.execute(sa.select(Payment.amount, Payment.refunded_amount)).all()) == [
        (500, 0),
        (500, 500),
    ]
    assert (figures.patron_count(), figures.monthly_revenue("EUR")) == (1, 500)
    assert membership_of(member.id) is MembershipStatus.ACTIVE
    entry = db.session.scalars(sa.select(AuditEntry)).one()
    assert (entry.action, entry.actor_id, entry.target_id) == (
        "billing.duplicate_cancelled",
        None,
        str(member.id),
    )
    assert entry.details["subscription"] == newer and entry.details["kept"] == kept
    assert entry.details["refunded"] == 500

    # Stripe retries everything, and sends what the cancellation and the refund caused.
    later = fake_stripe.events_of_type("customer.subscription.deleted", "charge.refunded")
    assert set(webhooks.deliver(*events, *later)) == {200}
    assert len(posts(fake_stripe, "/v1/refunds")) == 1
    assert count(AuditEntry) == 1

    staff = make_member("desk@example.org", role=Role.STAFF)
    db.session.commit()
    page = text(signed_in_client(stripe_app, staff).get(f"/staff/members/{member.id}"))
    assert "Cancelled automatically" in page and newer in page and kept in page
    assert "€5.00 refunded" in page


@pytest.mark.postgres_only
def test_the_two_subscriptions_arriving_at_once_end_with_one(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    events = _pay_two_checkouts(stripe_app, fake_stripe, patron[1])
    kept, newer = _subscription_ids(fake_stripe)
    paid = [e for e in events if e["type"] == "invoice.paid"]
    start = threading.Barrier(len(paid))
    statuses: list[int] = []

    def deliver(event: dict[str, Any]) -> None:
        body, headers = fake_stripe.webhook_request(event, WEBHOOK_SECRET)
        client = stripe_app.test_client()
        start.wait()
        statuses.append(client.post("/stripe/webhook", data=body, headers=headers).status_code)

    threads = [threading.Thread(target=deliver, args=(event,)) for event in paid]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Workers take them all at once, as they arrived.
    run_jobs(stripe_app, concurrency=len(paid))

    assert statuses == [200, 200]
    assert fake_stripe.get(kept)["status"] == "active"
    assert fake_stripe.get(newer)["status"] == "canceled"
    assert len(posts(fake_stripe, "/v1/refunds")) == 1
    assert count(AuditEntry) == 1
    assert (figures.patron_count(), figures.monthly_revenue("EUR")) == (1, 500)


def test_reconcile_cancels_a_second_subscription_whose_webhooks_were_lost(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    _pay_two_checkouts(stripe_app, fake_stripe, client)  # and not one webhook arrives
    kept, newer = _subscription_ids(fake_stripe)

    result = stripe_app.test_cli_runner().invoke(args=["billing", "reconcile"])

    assert (
        f"member {member.id} had 2 live subscriptions: {newer}, {kept};"
        f" kept {kept}, cancelled and refunded {newer}"
    ) in result.output, result.output
    assert fake_stripe.get(newer)["status"] == "canceled"
    assert (figures.patron_count(), figures.monthly_revenue("EUR")) == (1, 500)
    assert count(AuditEntry) == 1
    again = stripe_app.test_cli_runner().invoke(args=["billing", "reconcile"])
    assert "No drift" in again.output and count(AuditEntry) == 1, again.output
