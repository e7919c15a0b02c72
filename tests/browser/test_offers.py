"""A member follows an offer's link, confirms the pre-filled tier and joins through the demo
checkout with the first charge deferred, in Chromium."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.sync_api import expect

from supporters.billing import offers
from supporters.billing.models import Interval
from supporters.db import utcnow
from supporters.extensions import db
from tests.factories import make_member, make_tier


def test_an_offer_link_leads_to_a_deferred_demo_checkout(page: Any, live_server: Any) -> None:
    with live_server.app.app_context():
        make_tier("reader", name="Reader", monthly=500, yearly=5000, position=1)
        tier = make_tier("supporter", name="Supporter", monthly=1200, yearly=12000, position=2)
        member = make_member("olena@example.org")
        first_charge_at = utcnow() + dt.timedelta(days=12)
        _, url = offers.create_offer(
            member,
            tier=tier,
            interval=Interval.MONTH,
            first_charge_at=first_charge_at,
            note="Remember to cancel your pledge on Patreon.",
        )
        db.session.commit()

    page.goto(url)
    expect(page.get_by_text("Support at €12.00 a month (Supporter)")).to_be_visible()
    page.get_by_role("button", name="Sign in and continue").click()

    expect(page.get_by_role("heading", name="Your invitation")).to_be_visible()
    expect(page.get_by_text("Remember to cancel your pledge on Patreon.")).to_be_visible()
    expect(page.get_by_label("Supporter · €12.00 a month")).to_be_checked()
    page.get_by_label("Reader · €5.00 a month").check()
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_role("heading", name="Nothing to pay today")).to_be_visible()
    page.get_by_role("button", name="Pay (demo)").click()

    expect(page.get_by_role("heading", name="Welcome, patron!")).to_be_visible()
    expect(page.get_by_text("Nothing was charged today")).to_be_visible()
    page.get_by_role("link", name="Your support settings").click()
    expect(page.get_by_text("First charge on")).to_be_visible()
    expect(page.locator("dd", has_text="€5.00 a month")).to_be_visible()

    page.goto(url)  # the link again: spent
    expect(page.get_by_text("already taken up")).to_be_visible()
