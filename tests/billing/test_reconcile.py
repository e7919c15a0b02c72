"""`billing reconcile` repairs what missed webhooks left behind and reports it; `billing check`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing import payments
from supporters.billing.models import Payment, StripeEvent, Subscription, SubscriptionStatus
from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.models import Job
from supporters.jobs.worker import Worker
from supporters.members.models import Member
from tests.billing.conftest import WEBHOOK_SECRET, Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import count, join, the_subscription
from tests.conftest import run_jobs
from tests.factories import make_member, make_tier, signed_in_client


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


def test_workers_reconcile_every_hour_and_revive_dead_events(
    make_app: Any, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schedule: each customer compared with Stripe once an hour by the workers, and an
    event whose job died while Stripe was down queued again."""
    fake_stripe.reset()
    app = make_app(
        STRIPE_SECRET_KEY="sk_test_supporters",
        STRIPE_WEBHOOK_SECRET=[WEBHOOK_SECRET],
        STRIPE_API_BASE=fake_stripe.api_base,
        RECONCILE_MINUTES=60,
        JOBS_MAX_ATTEMPTS=1,
    )
    with app.app_context():
        make_tier("reader", name="Reader", monthly=500, yearly=5000)
        member = make_member("patron@example.org")
        db.session.commit()
        assert app.test_cli_runner().invoke(args=["billing", "sync-stripe"]).exit_code == 0
        client = signed_in_client(app, member)
        # The reader paid, and every webhook was lost.
        fake_stripe.complete_checkout(join(client, tier="reader", interval="month"))
        run_jobs(app)
        assert (count(Subscription), count(Payment)) == (1, 1)
        # Once per hour, however many workers run: a second run queues nothing.
        run_jobs(app)
        kinds = db.session.scalars(sa.select(Job.kind).where(Job.kind.startswith("billing.re")))
        assert sorted(kinds) == [
            "billing.reconcile",
            "billing.reconcile_customer",
            "billing.revive_events",
        ]

        # An event whose only attempt failed: dead, then queued again by the next hour's run.
        with monkeypatch.context() as patch:
            patch.setattr(payments, "record_invoice", _broken)
            subscription_id = db.session.scalars(sa.select(Subscription.stripe_subscription_id))
            renewal = fake_stripe.renew(str(subscription_id.one()))
            Webhooks(app, fake_stripe).deliver(*renewal)
        failed = db.session.scalars(
            sa.select(StripeEvent).where(StripeEvent.processed_at.is_(None))
        ).all()
        assert failed and all(row.error == "RuntimeError: database hiccup" for row in failed)
        next_hour = utcnow() + dt.timedelta(hours=1)
        Worker(app, clock=lambda: next_hour).run(once=True)
        db.session.expire_all()
        assert (
            db.session.scalar(sa.select(sa.func.count()).where(StripeEvent.processed_at.is_(None)))
            == 0
        )
        assert count(Payment) == 2


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("database hiccup")
