"""A member never pays twice: one open Checkout Session per member, and a second live
subscription, should one still appear, is cancelled and refunded.

Checkout Sessions stay payable for 24 hours, so two tabs of the support page are two ways to pay.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing.membership import MembershipStatus, membership_of
from supporters.billing.models import Subscription, SubscriptionStatus
from supporters.members.models import Member
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import count, join, posts, the_subscription
from tests.helpers import submit


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
