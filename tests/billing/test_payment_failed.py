"""A patron whose renewal failed: told the truth, able to fix it or to stop, never sent in circles.

The real SDK and gateway talk to the fake Stripe; webhooks arrive signed, as in production.
The app's clock follows the fake's, which moves as Stripe's days pass.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing.membership import MembershipStatus, membership_of
from supporters.billing.models import Subscription, SubscriptionStatus
from supporters.extensions import db
from supporters.members.models import Member
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import join, posts
from tests.billing.test_tier_prices import subscribed
from tests.helpers import submit, text

DAY = 24 * 60 * 60


def follow_stripe_clock(monkeypatch: pytest.MonkeyPatch, fake: FakeStripe) -> None:
    """Membership is judged at the fake Stripe's time, which its control methods move."""
    monkeypatch.setattr(
        "supporters.billing.membership.utcnow",
        lambda: dt.datetime.fromtimestamp(fake.now(), dt.UTC),
    )


def test_a_patron_past_the_grace_period_is_on_hold_and_can_cancel_now(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    member, client = patron
    follow_stripe_clock(monkeypatch, fake_stripe)
    subscription_id = subscribed(fake_stripe, webhooks, client, "reader")
    webhooks.deliver(*fake_stripe.renew(subscription_id, outcome="failed"))
    # In the grace period a cancellation already ends the support now: the period is unpaid.
    assert "Cancel now" in text(client.get("/account/support"))
    webhooks.deliver(*fake_stripe.advance_clock(8 * DAY))
    assert fake_stripe.get(subscription_id)["status"] == "past_due"  # Stripe still retries
    assert membership_of(member.id) is MembershipStatus.ON_HOLD

    page = text(client.get("/account/support"))
    assert "Payment failed: paused" in page and "Ended" not in page
    assert "your benefits are paused until a payment goes through" in page
    assert "Update card and see invoices" in page and "Cancel now" in page
    assert "Support us again" not in page
    assert "did not go through" not in page  # no banner leading to this very page
    home = text(client.get("/"))
    assert "Your last payment did not go through, so your benefits are paused." in home
    assert 'href="/account/support">Update your card, or cancel</a>' in home

    # Choosing a tier again leads to the page where the support can be fixed or stopped.
    again = submit(client, "/", action="/support", tier="reader", interval="month")
    assert again.headers["Location"] == "/account/support"
    assert "Update your card to resume it, or cancel it." in text(client.get("/account/support"))
    assert len(posts(fake_stripe, "/v1/checkout/sessions")) == 1

    response = submit(
        client, "/account/support", action="/account/support/cancel", reason="New card soon"
    )
    assert response.headers["Location"] == "/account/support"
    [cancel] = [r for r in fake_stripe.requests if r.method == "DELETE"]
    assert cancel.path == f"/v1/subscriptions/{subscription_id}"
    assert cancel.params == {"cancellation_details": {"comment": "New card soon"}}
    unpaid = fake_stripe.get(fake_stripe.get(subscription_id)["latest_invoice"])
    assert (unpaid["status"], unpaid["auto_advance"]) == ("open", False)  # not retried
    page = text(client.get("/account/support"))
    assert "your card will not be charged again" in page
    assert "Ended" in page and "Support us again" in page
    db.session.expire_all()
    ended = db.session.scalars(sa.select(Subscription)).one()
    assert (ended.status, ended.cancel_reason) == (SubscriptionStatus.CANCELED, "New card soon")
    assert membership_of(member.id) is MembershipStatus.LAPSED

    # Now joining again is a new checkout, not a way back to this page.
    join(client, tier="reader", interval="month")
    assert len(posts(fake_stripe, "/v1/checkout/sessions")) == 2
