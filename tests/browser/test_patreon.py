"""In Chromium: an admin uploads Patreon's export, checks the preview and the tier mapping,
and confirms the import."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from playwright.sync_api import expect

from supporters.extensions import db
from supporters.members.models import Role
from supporters.patreon.models import ImportedPatron
from tests.browser.conftest import sign_in_with_code
from tests.factories import make_member
from tests.patreon.conftest import EXPORT
from tests.smtp import MailServer
from tests.voting.factories import make_tier


def test_an_admin_uploads_previews_and_confirms_a_patreon_import(
    page: Any, live_server: Any, mail_server: MailServer
) -> None:
    with live_server.app.app_context():
        make_member("admin@example.org", role=Role.ADMIN, display_name="Admin")
        make_tier("Reader", monthly=500, slug="reader")
        make_tier("Insider", monthly=1000, slug="insider")
        db.session.commit()

    sign_in_with_code(page, mail_server, "admin@example.org")
    expect(page.get_by_role("status")).to_contain_text("You are signed in")
    page.wait_for_load_state("networkidle")

    page.goto("/staff/patreon/")
    page.get_by_role("link", name="Import an export").click()
    page.get_by_label("Patreon members export (CSV)").set_input_files(str(EXPORT))
    page.get_by_role("button", name="Upload and preview").click()

    expect(page.get_by_role("heading", name="What the import will change")).to_be_visible()
    expect(page.get_by_text("Members created")).to_be_visible()
    # Suggested by amount; the admin moves the "Reader" patrons to the dearer tier.
    reader = page.get_by_label("Patreon tier “Reader” (2 people)")
    expect(reader).to_have_value("reader")
    reader.select_option("insider")
    page.get_by_role("button", name="Confirm and import").click()

    expect(page.get_by_role("heading", name="Moving from Patreon")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("4 members created")
    expect(page.locator('[data-figure="imported"]')).to_have_text("4")
    with live_server.app.app_context():
        tiers = set(db.session.scalars(sa.select(ImportedPatron.patreon_tier)))
        assert tiers == {"Reader", "Insider"}
