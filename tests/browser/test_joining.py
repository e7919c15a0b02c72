"""A reader joins from the support page and pays through the demo checkout, in Chromium."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from supporters.extensions import db
from tests.factories import make_tier
from tests.smtp import MailServer, sign_in_code


def test_join_as_a_visitor_through_the_demo_checkout(
    page: Any, live_server: Any, mail_server: MailServer
) -> None:
    with live_server.app.app_context():
        make_tier("reader", name="Reader", monthly=500, yearly=5000, position=1)
        make_tier("supporter", name="Supporter", monthly=1200, yearly=12000, position=2)
        db.session.commit()

    page.goto("/")
    page.get_by_label("Supporter · €12.00 a month").check()
    page.get_by_label("Yearly").check()
    page.get_by_label("Email address").fill("mykola@example.org")
    page.get_by_role("button", name="Continue to payment").click()

    code = sign_in_code(mail_server.wait_for("mykola@example.org")[-1])
    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("You chose €120.00 a year.")).to_be_visible()
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_role("heading", name="Pay €120.00")).to_be_visible()
    page.get_by_role("button", name="Decline the card").click()
    expect(page.get_by_role("alert")).to_contain_text("declined")
    page.get_by_role("button", name="Pay (demo)").click()

    expect(page.get_by_role("heading", name="Welcome, patron!")).to_be_visible()
    page.get_by_role("link", name="Your support", exact=True).first.click()
    expect(page.get_by_text("Active", exact=True)).to_be_visible()
    expect(page.get_by_text("€120.00 a year")).to_be_visible()
    expect(page.get_by_role("cell", name="Paid")).to_be_visible()
