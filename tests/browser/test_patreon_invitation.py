"""In Chromium: an admin sends the Patreon invitations; a patron follows the emailed link, is
signed in and finds their Patreon tier and interval pre-filled, first charged on Patreon's next
charge date."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import expect

from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Role
from supporters.patreon.models import ChargeFrequency, ImportedPatron, PatronStatus
from tests.browser.conftest import sign_in_with_code
from tests.factories import make_member, make_tier
from tests.smtp import MailServer, body


def test_an_emailed_invitation_leads_to_the_pre_filled_offer(
    browser: Any, page: Any, live_server: Any, mail_server: MailServer
) -> None:
    next_charge_at = utcnow() + dt.timedelta(days=200)
    with live_server.app.app_context():
        make_member("admin@example.org", role=Role.ADMIN, display_name="Admin")
        make_tier("reader", name="Reader", monthly=500, yearly=5000, position=1)
        supporter = make_tier("supporter", name="Supporter", monthly=1200, yearly=12000, position=2)
        patron = make_member("grace@example.org", display_name="Grace")
        db.session.add(
            ImportedPatron(
                member_id=patron.id,
                status=PatronStatus.ACTIVE,
                pledge_amount=12000,
                currency="EUR",
                charge_frequency=ChargeFrequency.ANNUAL,
                last_charge_at=utcnow() - dt.timedelta(days=165),
                last_charge_status="Paid",
                next_charge_at=next_charge_at,
                tier_id=supporter.id,
            )
        )
        db.session.commit()

    sign_in_with_code(page, mail_server, "admin@example.org")
    expect(page.get_by_role("status")).to_contain_text("You are signed in")
    page.goto("/staff/patreon/")
    expect(page.get_by_text("1 patron has not been invited yet.")).to_be_visible()
    page.get_by_role("button", name="Send invitations").click()
    expect(page.get_by_role("status")).to_contain_text("Invitations are being sent")

    [invitation] = mail_server.wait_for("grace@example.org")
    link = re.search(r"http://127\.0\.0\.1:\d+/offer/\S+", body(invitation))
    assert link, body(invitation)

    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.goto(link.group(0))
    expect(tab.get_by_text("Support at €120.00 a year (Supporter)")).to_be_visible()
    tab.get_by_role("button", name="Sign in and continue").click()
    expect(tab.get_by_role("heading", name="Your invitation")).to_be_visible()
    expect(tab.get_by_text("Remember to cancel your pledge on Patreon")).to_be_visible()
    expect(tab.get_by_label("Supporter · €12.00 a month")).to_be_checked()
    expect(tab.get_by_label("Yearly")).to_be_checked()
    expect(tab.get_by_text("first charge on")).to_be_visible()
    context.close()

    page.goto("/staff/patreon/")
    expect(page.locator('[data-figure="opened"]')).to_have_text("1")
