"""Only what this installation made counts: its customers, its Checkout Sessions, its products.

Stripe sends the webhook every event of the account: other installations', other tools', the
Dashboard's. Each test makes such objects through the real SDK on the test Stripe server and
delivers the events they caused, signed, as Stripe would.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing import figures as billing_figures
from supporters.billing.membership import MembershipStatus, is_entitled, membership_of
from supporters.billing.models import Customer, Payment, StripeEvent, Subscription, Tier
from supporters.extensions import db
from supporters.members.models import Member
from supporters.staff.models import month_number
from supporters.staff.queries import headline, monthly
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import count, join, the_subscription


def figures() -> tuple[int, int, dict[str, int]]:
    """Patrons and MRR as readers (funding goals) and staff (the dashboard) see them."""
    return (
        billing_figures.patron_count(),
        billing_figures.monthly_revenue("EUR"),
        headline.now_figures().mrr,
    )


def ignored(event_type: str) -> list[str]:
    """Why the recorded events of a type were ignored ("" for one that was acted on)."""
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(StripeEvent.ignored_reason)
            .where(StripeEvent.type == event_type)
            .order_by(StripeEvent.id)
        )
    )


def test_a_customer_another_integration_made_never_attaches_to_a_member(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    stripe = stripe_app.extensions["stripe_client"]
    # The member supported us once, then cancelled.
    session_id = join(client, tier="reader", interval="month")
    assert set(webhooks.deliver(*fake_stripe.complete_checkout(session_id))) == {200}
    stripe.v1.subscriptions.cancel(fake_stripe.get(session_id)["subscription"])
    assert webhooks.deliver(*fake_stripe.events_of_type("customer.subscription.deleted")) == [200]
    assert membership_of(member.id) is MembershipStatus.LAPSED
    before = (count(Customer), count(Subscription), count(Payment), figures())

    # Another integration on the same account (another installation, a payment link) makes its
    # own customer, and names our member's id in every metadata field there is.
    names_our_member = {"member_id": str(member.id), "tier": "reader"}
    stranger = stripe.v1.customers.create(
        params={"email": "someone@elsewhere.example", "metadata": names_our_member}
    )
    reader = db.session.scalars(sa.select(Tier).where(Tier.slug == "reader")).one()
    theirs = stripe.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": stranger.id,
            "line_items": [{"price": reader.stripe_monthly_price_id, "quantity": 1}],
            "client_reference_id": str(member.id),
            "metadata": names_our_member,
            "subscription_data": {"metadata": names_our_member},
            "success_url": "https://elsewhere.example/thanks",
        }
    )
    events = fake_stripe.complete_checkout(theirs.id)
    assert set(webhooks.deliver(*events)) == {200}

    assert (count(Customer), count(Subscription), count(Payment), figures()) == before
    assert membership_of(member.id) is MembershipStatus.LAPSED
    assert ignored("customer.subscription.created") == [
        "",
        f"customer {stranger.id} belongs to no member here",
    ]
    assert ignored("checkout.session.completed")[-1] == (
        f"checkout session {theirs.id} was not opened here, for customer {stranger.id}"
    )
    # Nothing was stored that reconciliation would then look for in vain.
    result = stripe_app.test_cli_runner().invoke(args=["billing", "reconcile"])
    assert result.exit_code == 0 and "No drift" in result.output, result.output


def test_a_dashboard_subscription_on_a_member_s_customer_is_not_support(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    join(client, tier="reader", interval="month")  # left unpaid: the member has our customer
    customer_id = db.session.scalars(sa.select(Customer.stripe_customer_id)).one()
    stripe = stripe_app.extensions["stripe_client"]
    tote = stripe.v1.products.create(params={"name": "Tote bag club"})
    price = stripe.v1.prices.create(
        params={
            "product": tote.id,
            "unit_amount": 800,
            "currency": "eur",
            "recurring": {"interval": "month"},
        }
    )
    seen = len(fake_stripe.events)

    made = stripe.v1.subscriptions.create(
        params={
            "customer": customer_id,
            "items": [{"price": price.id}],
            "metadata": {"member_id": str(member.id)},
        }
    )
    events: list[dict[str, Any]] = fake_stripe.events[seen:]
    assert set(webhooks.deliver(*events)) == {200}

    assert (count(Subscription), count(Payment)) == (0, 0)
    assert figures() == (0, 0, {})
    assert not is_entitled(member.id)  # no vote
    reason = (
        f"subscription {made.id} is for product {tote.id}, which this installation did not make"
    )
    assert ignored("customer.subscription.created") == [reason]
    assert ignored("invoice.paid") == [reason]
    check = stripe_app.test_cli_runner().invoke(args=["billing", "check"])
    assert "webhook event(s) ignored" in check.output and reason in check.output, check.output
    result = stripe_app.test_cli_runner().invoke(args=["billing", "reconcile"])
    assert f"{made.id} (active) of member {member.id}: {reason}" in result.output, result.output
    assert count(Subscription) == 0


def test_a_price_a_tier_had_before_is_still_that_tier_s_support(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    session_id = join(client, tier="reader", interval="month")
    assert set(webhooks.deliver(*fake_stripe.complete_checkout(session_id))) == {200}
    reader = db.session.scalars(sa.select(Tier).where(Tier.slug == "reader")).one()
    reader.monthly_amount = 600  # a new price; the patron keeps the one they chose
    db.session.commit()
    assert stripe_app.test_cli_runner().invoke(args=["billing", "sync-stripe"]).exit_code == 0

    renewal = fake_stripe.renew(fake_stripe.get(session_id)["subscription"])
    assert set(webhooks.deliver(*renewal)) == {200}

    subscription = the_subscription()
    assert (subscription.tier_id, subscription.amount) == (reader.id, 500)
    assert figures() == (1, 500, {"EUR": 500})
    assert set(ignored("invoice.paid")) == {""}


def test_a_one_off_invoice_on_a_member_s_customer_is_not_support(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    _, client = patron
    session_id = join(client, tier="reader", interval="month")
    assert set(webhooks.deliver(*fake_stripe.complete_checkout(session_id))) == {200}
    paid_at = db.session.scalars(sa.select(Payment.paid_at)).one()
    assert paid_at is not None
    month = month_number(paid_at)
    before = (count(Payment), figures(), monthly.revenue_months([month]))

    # The newsroom bills the member's card for a tote bag, from the Dashboard.
    stripe = stripe_app.extensions["stripe_client"]
    subscription = stripe.v1.subscriptions.retrieve(fake_stripe.get(session_id)["subscription"])
    customer_id = str(subscription.customer)
    seen = len(fake_stripe.events)
    invoice = stripe.v1.invoices.create(
        params={
            "customer": customer_id,
            "default_payment_method": str(subscription.default_payment_method),
        }
    )
    stripe.v1.invoice_items.create(
        params={
            "customer": customer_id,
            "amount": 1500,
            "currency": "eur",
            "description": "Tote bag",
            "invoice": invoice.id,
        }
    )
    stripe.v1.invoices.finalize_invoice(invoice.id)
    assert stripe.v1.invoices.pay(invoice.id).status == "paid"
    assert set(webhooks.deliver(*fake_stripe.events[seen:])) == {200}

    # Not a payment of support: not in the member's payments, nor in revenue.
    assert (count(Payment), figures(), monthly.revenue_months([month])) == before
    assert ignored("invoice.paid") == [
        "",
        f"invoice {invoice.id} belongs to no subscription: a one-off invoice is not support",
    ]
