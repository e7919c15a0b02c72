"""A patron whose renewal failed follows the link in the payment notice to their card, in
Chromium: sign in with the emailed code, and land on the support page's card button."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import expect

from supporters import jobs
from supporters.billing.emails import NOTICES
from supporters.billing.models import Payment, PaymentStatus, SubscriptionStatus
from supporters.db import utcnow
from supporters.extensions import db
from tests.browser.conftest import LiveServer
from tests.factories import make_member
from tests.smtp import MailServer, body
from tests.voting.factories import make_subscription, make_tier


def test_the_fix_your_card_link_leads_through_sign_in_to_the_card(
    page: Any, live_server: LiveServer, mail_server: MailServer
) -> None:
    due = utcnow() - dt.timedelta(hours=2)
    with live_server.app.app_context():
        member = make_member("olena@example.org", display_name="Olena")
        subscription = make_subscription(
            member,
            make_tier("Reader"),
            status=SubscriptionStatus.PAST_DUE,
            current_period_start=due,
            current_period_end=due + dt.timedelta(days=30),
        )
        db.session.add(
            Payment(
                member_id=member.id,
                subscription_id=subscription.id,
                stripe_invoice_id="in_failed",
                amount=500,
                currency="EUR",
                status=PaymentStatus.FAILED,
                failed_at=due,
            )
        )
        jobs.enqueue(NOTICES, {})  # the hourly run, now
        db.session.commit()

    notice = mail_server.wait_for("olena@example.org")[-1]
    assert notice["Subject"] == "Your payment to The Test Gazette did not go through"
    match = re.search(r"(http://\S+/account/support/card/\S+)", body(notice))
    assert match, body(notice)

    page.goto(match.group(1))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email address").fill("olena@example.org")
    page.get_by_role("button", name="Email me a sign-in code").click()
    code = mail_server.wait_for_code("olena@example.org", after=1)
    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Your support", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/account/support#card$"))
    expect(page.get_by_text("Payment failed", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Update card and see invoices")).to_be_visible()
