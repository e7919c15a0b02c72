"""Staff and email: the daily digest for those who want it, and the page of recent messages
and addresses that bounce."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import jobs
from supporters.audit import AuditEntry
from supporters.billing.models import Payment, PaymentStatus, SubscriptionStatus
from supporters.extensions import db
from supporters.jobs.worker import Worker
from supporters.members import preferences
from supporters.members.models import Role
from supporters.staff.emails import DIGEST
from supporters.voting.models import TopicStatus
from tests.factories import make_member, signed_in_client
from tests.helpers import csrf_token, submit, text
from tests.jobs.conftest import FakeClock
from tests.jobs.test_schedule import run_side_by_side
from tests.smtp import MailServer, body, sign_in_code
from tests.voting.factories import make_subscription, make_tier, make_topic

MIDNIGHT = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
YESTERDAY = MIDNIGHT - dt.timedelta(hours=12)


def _digest_twice_on_two_workers(app: Flask) -> None:
    clock = FakeClock()
    for _ in range(2):
        jobs.enqueue(DIGEST, {})
    db.session.commit()
    clock.advance(seconds=5)
    run_side_by_side([Worker(app, clock=clock), Worker(app, clock=clock)])


def test_staff_who_ask_for_it_get_yesterdays_digest_once(
    app: Flask, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("supporters.staff.emails.utcnow", lambda: MIDNIGHT + dt.timedelta(hours=1))
    editor = make_member("editor@example.org", role=Role.STAFF, display_name="Eda")
    make_member("admin@example.org", role=Role.ADMIN)  # has not asked for it
    reader = make_member("reader@example.org")
    tier = make_tier("Reader")
    make_subscription(make_member(), tier, started_at=YESTERDAY)
    make_subscription(make_member(), tier, started_at=MIDNIGHT - dt.timedelta(days=3))
    make_subscription(
        make_member(),
        tier,
        status=SubscriptionStatus.INCOMPLETE,
        started_at=YESTERDAY,  # a checkout left unpaid is no patron
    )
    make_subscription(
        make_member(), tier, status=SubscriptionStatus.CANCELED, canceled_at=YESTERDAY
    )
    db.session.add(
        Payment(
            member_id=reader.id,
            stripe_invoice_id="in_failed",
            amount=500,
            currency="EUR",
            status=PaymentStatus.FAILED,
            failed_at=YESTERDAY,
        )
    )
    make_topic(status=TopicStatus.PROPOSED, proposed_by_id=reader.id)
    db.session.commit()
    client = signed_in_client(app, editor)
    submit(
        client,
        "/account",
        action="/account/email-preferences",
        topics=["staff_digest", "polls", "results", "proposals", "coverage"],
    )
    assert preferences.choices_of(editor)["staff_digest"] is True

    _digest_twice_on_two_workers(app)
    _digest_twice_on_two_workers(app)

    [digest] = mail_server.messages
    assert digest["To"] == "editor@example.org"
    assert digest["Subject"] == "Yesterday at The Test Gazette"
    lines = body(digest)
    assert "on Dec 5, 2026 (UTC)" in lines
    for line in (
        "New patrons: 1",
        "Cancellations: 1",
        "Failed payments: 1",
        "Proposals waiting for review: 1",
    ):
        assert line in lines
    assert "http://localhost/polls/manage/topics" in lines
    assert digest["List-Unsubscribe"] is not None


def test_a_quiet_day_sends_no_digest(
    app: Flask, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("supporters.staff.emails.utcnow", lambda: MIDNIGHT)
    editor = make_member(role=Role.STAFF)
    db.session.commit()
    preferences.set_choices(editor, ["staff_digest"])
    db.session.commit()
    _digest_twice_on_two_workers(app)
    assert mail_server.messages == []


def test_staff_see_where_each_message_stands_but_never_its_secret(
    app: Flask, mail_server: MailServer
) -> None:
    editor = make_member("editor@example.org", role=Role.STAFF)
    admin = make_member("admin@example.org", role=Role.ADMIN)
    db.session.commit()
    mail_server.refuse("gone@example.org")
    for address in ("reader@example.org", "gone@example.org"):
        submit(app.test_client(), "/sign-in", email=address)
    code = sign_in_code(mail_server.last_to("reader@example.org"))

    page = text(signed_in_client(app, editor).get("/staff/emails"))
    assert "Sign-in link and code" in page
    assert "Confirm your email to join The Test Gazette" in page
    assert page.count(">Sent<") == 1 and page.count(">Refused<") == 1
    assert code not in page
    assert "550 5.1.1 No such mailbox here" in page
    assert "Send optional mail again" not in page  # an admin's button

    admin_client = signed_in_client(app, admin)
    answer = submit(
        admin_client, "/staff/emails", action="/staff/emails/bouncing", email="gone@example.org"
    )
    assert answer.status_code == 302
    assert "None: every address takes our mail." in text(admin_client.get("/staff/emails"))
    [entry] = db.session.scalars(
        sa.select(AuditEntry).where(AuditEntry.action == "mail.bounce_forgotten")
    )
    assert (entry.actor_id, entry.target_id) == (admin.id, "gone@example.org")
    token = csrf_token(admin_client, "/staff/emails")
    again = admin_client.post("/staff/emails/bouncing", data={"csrf_token": token, "email": ""})
    assert again.status_code == 400
