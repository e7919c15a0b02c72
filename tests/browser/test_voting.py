"""In Chromium: a patron votes and changes the vote; staff download who voted for what."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from playwright.sync_api import expect

from supporters.audit import AuditEntry
from supporters.extensions import db
from supporters.members.models import Role
from supporters.voting import ballots
from tests.factories import make_member
from tests.smtp import MailServer, sign_in_code
from tests.voting.factories import make_patron, make_poll, option_ids


def test_a_patron_votes_sees_results_and_changes_the_vote(
    page: Any, live_server: Any, mail_server: MailServer
) -> None:
    with live_server.app.app_context():
        poll = make_poll(question="What should we investigate next?", max_choices=2)
        make_patron(email="olena@example.org", display_name="Olena")
        ballots.cast_vote(poll, make_patron(), [option_ids(poll)[0]])  # someone chose Schools
        db.session.commit()
        poll_url = f"/polls/{poll.id}"

    page.goto(poll_url)
    expect(page.get_by_text("Sign in as a patron to vote.")).to_be_visible()
    page.get_by_role("link", name="Already a patron? Sign in").click()
    page.get_by_label("Email address").fill("olena@example.org")
    page.get_by_role("button", name="Email me a sign-in code").click()
    code = sign_in_code(mail_server.wait_for("olena@example.org")[-1])
    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Sign in").click()

    # Back on the poll: a ballot, and no results before voting.
    expect(page.get_by_role("heading", name="What should we investigate next?")).to_be_visible()
    expect(page.get_by_text("Results appear here once you have voted.")).to_be_visible()
    schools = page.get_by_role("checkbox", name="Schools")
    housing = page.get_by_role("checkbox", name="Housing")
    transport = page.get_by_role("checkbox", name="Transport")
    schools.check()
    housing.check()
    # The script keeps a third box from being ticked (the server checks too).
    expect(transport).to_be_disabled()
    expect(page.get_by_text("2 of 2 chosen")).to_be_visible()
    page.get_by_role("button", name="Cast my vote").click()

    expect(page.get_by_role("status")).to_contain_text("Thank you: your vote is counted.")
    results = page.locator("#results")
    expect(results).to_contain_text("2 patrons voted")
    expect(results.get_by_role("progressbar", name="Schools: 100.0%")).to_be_visible()
    expect(results.get_by_role("progressbar", name="Housing: 50.0%")).to_be_visible()

    schools.uncheck()
    transport.check()
    page.get_by_role("button", name="Change my vote").click()
    expect(page.get_by_role("status")).to_contain_text("Your vote is changed.")
    expect(results).to_contain_text("2 patrons voted")
    expect(results.get_by_role("progressbar", name="Schools: 50.0%")).to_be_visible()
    expect(results.get_by_role("progressbar", name="Transport: 50.0%")).to_be_visible()
    expect(page.get_by_role("checkbox", name="Schools")).not_to_be_checked()
    expect(page.get_by_role("checkbox", name="Transport")).to_be_checked()


def test_staff_download_the_votes_from_the_votes_page_and_it_is_audited(
    page: Any, live_server: Any, mail_server: MailServer
) -> None:
    with live_server.app.app_context():
        poll = make_poll()
        ballots.cast_vote(poll, make_patron(display_name="Olena"), [option_ids(poll)[1]])
        make_member("editor@example.org", role=Role.STAFF, display_name="Editor")
        db.session.commit()
        download_url = f"/polls/manage/{poll.id}/votes.csv"

    page.goto("/sign-in")
    page.get_by_label("Email address").fill("editor@example.org")
    page.get_by_role("button", name="Email me a sign-in code").click()
    page.get_by_label("Code from the email").fill(
        sign_in_code(mail_server.wait_for("editor@example.org")[-1])
    )
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed in")
    # Every response refreshes the session cookie, the account page's stylesheet and icon too:
    # let them land before the next page's message is put in it.
    page.wait_for_load_state("networkidle")

    # The download's address opened directly (as from a link in a chat): the votes page.
    page.goto(download_url)
    expect(page.get_by_role("heading", name="Who voted for what")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("downloads are recorded in the audit log")
    with live_server.app.app_context():
        assert db.session.scalars(sa.select(AuditEntry)).all() == []

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text())))
    assert [(r["name"], r["choices"]) for r in rows] == [("Olena", "Housing")]
    with live_server.app.app_context():
        audited = db.session.scalars(sa.select(AuditEntry.action)).all()
    assert audited == ["poll.votes_exported"]
