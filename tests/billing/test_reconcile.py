"""`billing reconcile` repairs what missed webhooks left behind and reports it; `billing check`."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from supporters.billing.models import Payment, Subscription, SubscriptionStatus
from supporters.extensions import db
from supporters.members.models import Member
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import count, join, the_subscription


def _reconcile(app: Flask) -> Any:
    return app.test_cli_runner().invoke(args=["billing", "reconcile"])


def test_reconcile_repairs_missed_webhooks_and_reports_drift(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    # The reader paid, but closed the tab and every webhook was lost.
    session_id = join(client, tier="supporter", interval="month")
    fake_stripe.complete_checkout(session_id)
    assert count(Subscription) == 0

    result = _reconcile(stripe_app)
    assert result.exit_code == 0, result.output
    assert "Paying in Stripe but missing here (now added)" in result.output
    assert (count(Subscription), count(Payment)) == (1, 1)
    assert the_subscription().status is SubscriptionStatus.ACTIVE

    # A failed renewal whose webhooks were lost: the status is repaired and said.
    subscription_id = fake_stripe.get(session_id)["subscription"]
    fake_stripe.renew(subscription_id, outcome="failed")
    result = _reconcile(stripe_app)
    assert f"{subscription_id} of member {member.id}: was active, now past_due" in result.output
    assert the_subscription().status is SubscriptionStatus.PAST_DUE

    # Running it again finds nothing: it is safe to run from cron.
    result = _reconcile(stripe_app)
    assert result.exit_code == 0 and "No drift" in result.output


def test_reconcile_reports_duplicate_customers_and_unknown_subscriptions(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    join(client, tier="reader", interval="month")
    stripe = stripe_app.extensions["stripe_client"]
    duplicate = stripe.v1.customers.create(params={"email": member.email})
    for subscription_id in ("sub_gone", "sub_gone_too"):
        db.session.add(
            Subscription(
                member_id=member.id,
                interval="month",
                amount=500,
                currency="EUR",
                status=SubscriptionStatus.ACTIVE,
                stripe_subscription_id=subscription_id,
            )
        )
    db.session.commit()
    result = _reconcile(stripe_app)
    assert f"has other Stripe customers: {duplicate.id}" in result.output
    assert "sub_gone is active here but was not found in Stripe" in result.output
    assert f"member {member.id} has 2 subscriptions counted as support here" in result.output


def test_check_explains_what_is_missing(make_app: Any, fake_stripe: FakeStripe) -> None:
    bare = make_app()
    output = bare.test_cli_runner().invoke(args=["billing", "check"]).output
    assert "STRIPE_SECRET_KEY is not set" in output and "WEBHOOK_SECRET is not set" in output

    mixed = make_app(
        STRIPE_SECRET_KEY="sk_live_x",
        STRIPE_PUBLISHABLE_KEY="pk_test_x",
        STRIPE_WEBHOOK_SECRET=["whsec_x"],
        STRIPE_API_BASE=fake_stripe.api_base,
    )
    with mixed.app_context():
        from tests.factories import make_tier

        make_tier("reader")
        db.session.commit()
    result = mixed.test_cli_runner().invoke(args=["billing", "check"])
    assert result.exit_code != 0
    assert "not a live-mode key like the secret key" in result.output
    assert "A live-mode key in development" in result.output
    assert "Tiers without Stripe prices: reader" in result.output
