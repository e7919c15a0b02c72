"""Joining, renewing, failing, fixing, changing, cancelling and refunding through Stripe.

The real SDK and gateway talk to a fake Stripe on 127.0.0.1 that answers in the pinned API
version's shapes; webhooks arrive signed and are verified as in production.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing.membership import MembershipStatus, membership_of
from supporters.billing.models import (
    Customer,
    Payment,
    PaymentStatus,
    StripeEvent,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from supporters.extensions import db
from supporters.members.models import Member
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.helpers import submit, text

#: The support form's choice of a one-time gift of 25 euros.
GIFT = {"tier": "custom", "amount": "25", "interval": "once"}


def count(model: type) -> int:
    db.session.expire_all()
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def join(client: FlaskClient, **choice: str) -> str:
    """Submit the support form; return the Checkout Session id Stripe's page was opened for."""
    response = submit(client, "/", action="/support", **choice)
    assert response.status_code == 303, text(response)
    match = re.search(r"/c/pay/(cs_test_\w+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def posts(fake: FakeStripe, path: str) -> list[Any]:
    """The POST requests the gateway sent to one Stripe path, oldest first."""
    return [r for r in fake.requests if r.method == "POST" and r.path == path]


def the_subscription() -> Subscription:
    db.session.expire_all()
    return db.session.scalars(sa.select(Subscription)).one()


def test_sync_stripe_is_idempotent_and_replaces_changed_prices(
    stripe_app: Flask, fake_stripe: FakeStripe, synced_tiers: None
) -> None:
    tier = db.session.scalars(sa.select(Tier).where(Tier.slug == "reader")).one()
    first_monthly = tier.stripe_monthly_price_id
    assert first_monthly and tier.stripe_yearly_price_id and tier.stripe_product_id
    price = fake_stripe.get(first_monthly)
    assert (price["unit_amount"], price["currency"], price["recurring"]["interval"]) == (
        500,
        "eur",
        "month",
    )
    assert price["lookup_key"].endswith(":reader:month")
    created = len([r for r in fake_stripe.requests if r.method == "POST"])

    runner = stripe_app.test_cli_runner()
    again = runner.invoke(args=["billing", "sync-stripe"])
    assert again.exit_code == 0 and "4 price(s) already up to date" in again.output
    assert len([r for r in fake_stripe.requests if r.method == "POST"]) == created

    tier.monthly_amount = 600
    db.session.commit()
    # A product the newsroom made by hand in the same Stripe account is never touched.
    theirs = stripe_app.extensions["stripe_client"].v1.products.create(params={"name": "Tote bag"})
    runner.invoke(args=["billing", "sync-stripe"])
    assert not [r for r in fake_stripe.requests if r.path == f"/v1/products/{theirs.id}"]
    db.session.refresh(tier)
    assert tier.stripe_monthly_price_id != first_monthly
    assert fake_stripe.get(first_monthly)["active"] is False
    assert fake_stripe.get(tier.stripe_monthly_price_id)["unit_amount"] == 600  # type: ignore[arg-type]


def test_checkout_passes_the_member_s_one_customer_and_never_grants_from_the_redirect(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    session_id = join(client, tier="supporter", interval="month")
    tier = db.session.scalars(sa.select(Tier).where(Tier.slug == "supporter")).one()

    creates = posts(fake_stripe, "/v1/checkout/sessions")
    [request] = creates
    customer_id = db.session.scalar(sa.select(Customer.stripe_customer_id))
    assert request.params["customer"] == customer_id
    assert request.params["mode"] == "subscription"
    assert request.params["line_items"][0]["price"] == tier.stripe_monthly_price_id
    assert request.params["metadata"]["member_id"] == str(member.id)
    assert request.params["subscription_data"]["metadata"]["tier"] == "supporter"
    assert request.idempotency_key and request.stripe_version == "2026-10-28.endive"
    [customer_create] = posts(fake_stripe, "/v1/customers")
    assert customer_create.idempotency_key == f"customer-member-{member.id}"

    # Reaching the success page with an unpaid session grants nothing.
    fake_success = "/support/welcome?session_id=" + session_id
    assert "Almost there" in text(client.get(fake_success))
    assert membership_of(member.id) is MembershipStatus.NONE

    fake_stripe.complete_checkout(session_id)
    welcome = client.get(fake_stripe.success_redirect_url(session_id).split("localhost", 1)[1])
    assert "Welcome, patron!" in text(welcome)
    subscription = the_subscription()
    assert (subscription.status, subscription.amount, subscription.tier_id) == (
        SubscriptionStatus.ACTIVE,
        1000,
        tier.id,
    )
    assert subscription.current_period_end is not None
    payment = db.session.scalars(sa.select(Payment)).one()
    assert (payment.status, payment.amount, payment.subscription_id) == (
        PaymentStatus.PAID,
        1000,
        subscription.id,
    )

    # A second subscription is refused before any new checkout; the same customer is reused.
    again = submit(client, "/", action="/support", tier="reader", interval="month")
    assert again.headers["Location"] == "/account/support"
    assert len(posts(fake_stripe, "/v1/checkout/sessions")) == 1
    assert count(Customer) == 1


def test_webhooks_and_success_page_together_record_each_thing_once(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    _, client = patron
    session_id = join(client, tier="reader", interval="year")
    events = fake_stripe.complete_checkout(session_id)
    assert set(webhooks.deliver(*events)) == {200}
    client.get(fake_stripe.success_redirect_url(session_id).split("localhost", 1)[1])
    assert webhooks.deliver(*events) == [200] * len(events)  # Stripe retried them all
    assert (count(Subscription), count(Payment)) == (1, 1)
    assert count(StripeEvent) == len(events)
    assert the_subscription().interval.value == "year"


def test_events_in_reverse_order_end_in_the_right_state(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    session_id = join(client, tier="supporter", interval="month")
    events = fake_stripe.complete_checkout(session_id)
    subscription_id = fake_stripe.get(session_id)["subscription"]
    events += fake_stripe.renew(subscription_id, outcome="failed")
    events += fake_stripe.pay_latest_invoice(subscription_id)
    assert set(webhooks.deliver(*reversed(events))) == {200}
    subscription = the_subscription()
    assert subscription.status is SubscriptionStatus.ACTIVE
    db.session.expire_all()
    statuses = sorted(p.status.value for p in db.session.scalars(sa.select(Payment)))
    assert statuses == ["paid", "paid"]
    assert membership_of(member.id) is MembershipStatus.ACTIVE


@pytest.mark.parametrize("first", ["charge.refunded", "charge.dispute."])
@pytest.mark.parametrize("choice", [{"tier": "reader", "interval": "month"}, GIFT])
def test_a_refund_or_dispute_that_arrives_before_its_payment_is_kept(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    first: str,
    choice: dict[str, str],
) -> None:
    _, client = patron
    paid = fake_stripe.complete_checkout(join(client, **choice))
    charge = [e for e in paid if e["type"] == "charge.succeeded"][-1]["data"]["object"]
    # Staff refund part of it in the Dashboard, and the cardholder's bank disputes the rest.
    stripe = stripe_app.extensions["stripe_client"]
    stripe.v1.refunds.create(params={"charge": charge["id"], "amount": 200})
    later = fake_stripe.events_of_type("charge.refunded")
    later += fake_stripe.dispute(charge["id"], amount=charge["amount"] - 200)
    early = [e for e in later if e["type"].startswith(first)]
    later = [e for e in later if e not in early]

    # The payment's own events come after it (an earlier delivery failed, or they are late).
    assert set(webhooks.deliver(*early, *paid, *later)) == {200}

    payment = db.session.scalars(sa.select(Payment)).one()
    assert (payment.amount, payment.refunded_amount, payment.disputed_amount) == (
        charge["amount"],
        200,
        charge["amount"] - 200,
    )
    assert set(db.session.scalars(sa.select(StripeEvent.ignored_reason))) == {""}


def test_the_whole_lifecycle(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    session_id = join(client, tier="reader", interval="month")
    webhooks.deliver(*fake_stripe.complete_checkout(session_id))
    subscription_id = fake_stripe.get(session_id)["subscription"]
    assert membership_of(member.id) is MembershipStatus.ACTIVE

    # Renewal goes through.
    webhooks.deliver(*fake_stripe.renew(subscription_id))
    assert count(Payment) == 2

    # Renewal fails: past due, a banner, the staff queue; benefits continue in the grace period.
    webhooks.deliver(*fake_stripe.renew(subscription_id, outcome="failed"))
    assert the_subscription().status is SubscriptionStatus.PAST_DUE
    assert membership_of(member.id) is MembershipStatus.GRACE
    assert "Your last payment did not go through" in text(client.get("/"))
    failed = db.session.scalars(
        sa.select(Payment).where(Payment.status == PaymentStatus.FAILED)
    ).one()
    assert failed.failed_at is not None

    # The card is fixed: the same invoice is paid, no new row.
    webhooks.deliver(*fake_stripe.pay_latest_invoice(subscription_id))
    assert the_subscription().status is SubscriptionStatus.ACTIVE
    assert [p.status for p in db.session.scalars(sa.select(Payment))].count(PaymentStatus.PAID) == 3
    assert "did not go through" not in text(client.get("/"))

    # Change tier now, prorated; Stripe is told the new price of the same item.
    response = submit(
        client,
        "/account/support",
        action="/account/support/change",
        tier="supporter",
        interval="month",
    )
    assert response.status_code == 302
    update = posts(fake_stripe, f"/v1/subscriptions/{subscription_id}")[-1]
    supporter = db.session.scalars(sa.select(Tier).where(Tier.slug == "supporter")).one()
    assert update.params["items"][0]["price"] == supporter.stripe_monthly_price_id
    assert update.params["proration_behavior"] == "create_prorations"
    assert (the_subscription().amount, the_subscription().tier_id) == (1000, supporter.id)

    # Cancel at period end with a reason, then resume before it ends.
    submit(
        client, "/account/support", action="/account/support/cancel", reason="Too many newsletters"
    )
    subscription = the_subscription()
    assert (
        subscription.cancel_at_period_end and subscription.cancel_reason == "Too many newsletters"
    )
    assert fake_stripe.get(subscription_id)["cancel_at_period_end"] is True
    submit(client, "/account/support", action="/account/support/resume")
    assert the_subscription().cancel_at_period_end is False

    # Cancel for good: the period ends, Stripe deletes the subscription.
    submit(client, "/account/support", action="/account/support/cancel", reason="")
    webhooks.deliver(*fake_stripe.end_subscription(subscription_id))
    subscription = the_subscription()
    assert subscription.status is SubscriptionStatus.CANCELED and subscription.ended_at is not None
    assert membership_of(member.id) is MembershipStatus.LAPSED

    # A refund of the first payment, then a dispute on the second.
    first, second = db.session.scalars(sa.select(Payment).order_by(Payment.id).limit(2)).all()
    assert first.stripe_payment_intent_id and second.stripe_payment_intent_id
    stripe_client = stripe_app.extensions["stripe_client"]
    refund = stripe_client.v1.refunds.create(
        params={"payment_intent": first.stripe_payment_intent_id, "amount": 200}
    )
    assert refund.status == "succeeded"
    assert set(webhooks.deliver(*fake_stripe.events_of_type("charge.refunded"))) == {200}
    db.session.refresh(first)
    assert first.refunded_amount == 200 and first.stripe_charge_id
    charge_id = fake_stripe.get(second.stripe_payment_intent_id)["latest_charge"]
    webhooks.deliver(*fake_stripe.dispute(charge_id))
    db.session.refresh(second)
    assert second.disputed_at is not None
    page = text(client.get("/account/support"))
    assert "Partly refunded (€2.00)" in page


def test_a_custom_amount_uses_inline_price_data(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    _, client = patron
    session_id = join(client, tier="custom", amount="7.50", interval="month")
    request = posts(fake_stripe, "/v1/checkout/sessions")[-1]
    price_data: dict[str, Any] = request.params["line_items"][0]["price_data"]
    assert (
        price_data["unit_amount"],
        price_data["currency"],
        price_data["recurring"]["interval"],
    ) == ("750", "eur", "month")
    assert price_data["product"].startswith("prod_")
    fake_stripe.complete_checkout(session_id)
    client.get(fake_stripe.success_redirect_url(session_id).split("localhost", 1)[1])
    subscription = the_subscription()
    assert (subscription.amount, subscription.tier_id) == (750, None)


def test_portal_sends_the_member_to_stripe(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    _, client = patron
    refused = submit(client, "/account/support", action="/account/support/portal")
    assert refused.headers["Location"] == "/account/support"
    join(client, tier="reader", interval="month")
    response = submit(client, "/account/support", action="/account/support/portal")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://billing.stripe.com/")
    [request] = posts(fake_stripe, "/v1/billing_portal/sessions")
    assert request.params["return_url"] == "http://localhost/account/support"


def test_a_one_time_gift_is_recorded_once_from_its_webhook(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    session_id = join(client, tier="custom", amount="25", interval="once")
    request = posts(fake_stripe, "/v1/checkout/sessions")[-1]
    assert request.params["mode"] == "payment"
    assert "recurring" not in request.params["line_items"][0]["price_data"]
    events = fake_stripe.complete_checkout(session_id)
    assert set(webhooks.deliver(*events, *events)) == {200}
    gift = db.session.scalars(sa.select(Payment)).one()
    assert (gift.kind.value, gift.amount, gift.status, gift.member_id) == (
        "one_time",
        2500,
        PaymentStatus.PAID,
        member.id,
    )
    assert count(Subscription) == 0
    # A gift does not make a patron, and a patron may still give once more.
    assert membership_of(member.id) is MembershipStatus.NONE
    # The thank-you page promises a receipt in the account: Stripe's, of the gift's charge.
    charge = fake_stripe.get(
        str(fake_stripe.get(str(gift.stripe_payment_intent_id))["latest_charge"])
    )
    assert charge["receipt_url"].startswith("https://pay.stripe.com/receipts/")
    assert (gift.receipt_url, gift.stripe_charge_id) == (charge["receipt_url"], charge["id"])
    assert f'<a href="{charge["receipt_url"]}" rel="noopener">Receipt</a>' in text(
        client.get("/account/support")
    )
    # A gift recorded without its receipt gets it the next time its checkout is looked at.
    gift.receipt_url = ""
    db.session.commit()
    client.get(fake_stripe.success_redirect_url(session_id).split("localhost", 1)[1])
    db.session.refresh(gift)
    assert gift.receipt_url == charge["receipt_url"]
