"""An admin changes a tier's price while Stripe is down, then once it is back, in Chromium."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from supporters.extensions import db
from supporters.members.models import Role
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_tier_prices import closed_port
from tests.billing.test_webhooks import _point_stripe_at
from tests.browser.conftest import LiveServer, sign_in_with_code
from tests.factories import make_member, make_tier
from tests.smtp import MailServer


def test_a_price_change_waits_for_stripe_and_keeps_what_was_typed(
    browser: Any, stripe_server: tuple[LiveServer, FakeStripe], mail_server: MailServer
) -> None:
    server, fake = stripe_server
    app = server.app
    with app.app_context():
        make_tier("reader", name="Reader", monthly=500, yearly=5000)
        make_member("editor@example.org", role=Role.ADMIN, display_name="Editor")
        db.session.commit()
        assert app.test_cli_runner().invoke(args=["billing", "sync-stripe"]).exit_code == 0

    context = browser.new_context(base_url=server.url, locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in_with_code(page, mail_server, "editor@example.org")
        page.goto("/staff/tiers")
        page.get_by_role("link", name="Edit").click()
        page.get_by_label("Monthly price").fill("6.50")

        _point_stripe_at(app, closed_port())
        page.get_by_role("button", name="Save tier").click()
        expect(page.get_by_role("alert")).to_contain_text("Stripe could not be reached")
        expect(page.get_by_label("Monthly price")).to_have_value("6.50")

        _point_stripe_at(app, fake.api_base)
        page.get_by_role("button", name="Save tier").click()
        expect(page.get_by_text("Tier “Reader” saved.")).to_be_visible()
        expect(page.get_by_role("cell", name="€6.50")).to_be_visible()
        page.goto("/")
        expect(page.get_by_label("Reader · €6.50 a month")).to_be_visible()
    finally:
        context.close()
