"""A patron whose payment failed past the grace period reads what is true, and stops, in Chromium.

The app talks to the fake Stripe through the real SDK; webhooks arrive signed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from playwright.sync_api import expect

from supporters.extensions import db
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_tier_prices import subscribed
from tests.browser.conftest import LiveServer, sign_in_with_code
from tests.factories import make_member, make_tier, signed_in_client
from tests.smtp import MailServer

DAY = 24 * 60 * 60


def test_a_patron_on_hold_sees_why_and_cancels_then_can_join_again(
    browser: Any,
    stripe_server: tuple[LiveServer, FakeStripe],
    mail_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, fake = stripe_server
    app = server.app
    monkeypatch.setattr(
        "supporters.billing.membership.utcnow",
        lambda: dt.datetime.fromtimestamp(fake.now(), dt.UTC),
    )
    with app.app_context():
        make_tier("reader", name="Reader", monthly=500, yearly=5000)
        member = make_member("olena@example.org", display_name="Olena")
        db.session.commit()
        assert app.test_cli_runner().invoke(args=["billing", "sync-stripe"]).exit_code == 0
        webhooks = Webhooks(app, fake)
        subscription_id = subscribed(fake, webhooks, signed_in_client(app, member), "reader")
        webhooks.deliver(*fake.renew(subscription_id, outcome="failed"))
        webhooks.deliver(*fake.advance_clock(8 * DAY))  # past the 7-day grace period
        assert fake.get(subscription_id)["status"] == "past_due"  # Stripe still retries

    context = browser.new_context(base_url=server.url, locale="en-GB")
    context.set_default_timeout(10_000)
    # Stripe's Checkout page is not on this machine: a stand-in answers for it.
    context.route(
        "https://checkout.stripe.com/**",
        lambda route: route.fulfill(content_type="text/html", body="<h1>Stripe Checkout</h1>"),
    )
    page = context.new_page()
    try:
        sign_in_with_code(page, mail_server, "olena@example.org")

        banner = page.get_by_role("status").filter(has_text="did not go through")
        expect(banner).to_contain_text("your benefits are paused")
        banner.get_by_role("link", name="Update your card to resume them").click()

        expect(page.get_by_role("heading", name="Your support", exact=True)).to_be_visible()
        expect(page.get_by_text("Payment failed: paused")).to_be_visible()
        expect(page.get_by_text("We are still retrying your card")).to_be_visible()
        expect(page.get_by_role("button", name="Update card and see invoices")).to_be_visible()
        expect(page.get_by_text("Ended", exact=True)).to_have_count(0)
        expect(page.get_by_role("link", name="Support us again")).to_have_count(0)

        page.get_by_label("Why are you leaving? (optional)").fill("Changing banks")
        page.get_by_role("button", name="Cancel now").click()
        expect(page.get_by_text("your card will not be charged again")).to_be_visible()
        expect(page.get_by_text("Ended", exact=True)).to_be_visible()

        page.get_by_role("link", name="Support us again").click()
        page.get_by_label("Reader · €5.00 a month").check()
        page.get_by_role("button", name="Continue to payment").click()
        expect(page.get_by_role("heading", name="Stripe Checkout")).to_be_visible()
    finally:
        context.close()
