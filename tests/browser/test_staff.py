"""A staff member signs in, reads the overview, filters the members list and downloads it."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Role
from tests.factories import make_member, make_tier
from tests.smtp import MailServer, sign_in_code
from tests.staff.driver import Driver


def test_staff_reads_the_overview_filters_members_and_downloads_them(
    page: Any, live_server: Any, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with live_server.app.app_context():
        make_tier("reader", name="Reader", monthly=500, yearly=5000)
        make_member("editor@example.org", role=Role.STAFF, display_name="Editor")
        olena = make_member("olena@example.org", display_name="Olena Kovalenko")
        petro = make_member("petro@example.org", display_name="Petro Shevchenko")
        make_member("reader@example.org", display_name="Just Reading")
        db.session.commit()
        d = Driver(monkeypatch).at(utcnow())
        d.subscribe(olena, "sub_olena", amount=500, tier="reader")
        d.subscribe(petro, "sub_petro", amount=1200)
        d.cancel_now("sub_petro")

    page.goto("/sign-in")
    page.get_by_label("Email address").fill("editor@example.org")
    page.get_by_role("button", name="Email me a sign-in code").click()
    page.get_by_label("Code from the email").fill(
        sign_in_code(mail_server.wait_for("editor@example.org")[-1])
    )
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("link", name="Staff", exact=True).click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.locator("#stat-patrons")).to_have_text("1")
    expect(page.get_by_text("Monthly recurring revenue (EUR)").first).to_be_visible()
    expect(page.get_by_role("img", name="Active patrons at the end of each month")).to_be_visible()
    expect(page.get_by_role("heading", name="How these figures are counted")).to_be_visible()

    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Members").click()
    expect(page.get_by_role("cell", name="Just Reading")).to_be_visible()
    page.get_by_label("Status").select_option("canceled")
    page.get_by_role("button", name="Show members").click()
    expect(page.get_by_role("link", name="Petro Shevchenko")).to_be_visible()
    expect(page.get_by_role("link", name="Olena Kovalenko")).to_have_count(0)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download these members (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.startswith("members-")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert [(r["email"], r["subscription_status"], r["amount"]) for r in rows] == [
        ("petro@example.org", "canceled", "12.00")
    ]
