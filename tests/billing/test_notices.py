"""Notices found by the hourly job: a yearly renewal coming up, a failed payment's reminders on
the dunning days. Each is sent once, however often and by however many workers the job runs."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters import config, jobs
from supporters.audit import AuditEntry
from supporters.billing.emails import NOTICES
from supporters.billing.models import Interval, Payment, PaymentStatus, SubscriptionStatus
from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.worker import Worker
from supporters.members.models import Member, Role
from supporters.site_settings import SiteSetting
from tests.billing.test_emails import html, links
from tests.factories import make_member, signed_in_client
from tests.helpers import submit
from tests.jobs.conftest import FakeClock
from tests.jobs.test_schedule import run_side_by_side
from tests.smtp import MailServer, body
from tests.voting.factories import make_subscription, make_tier

DAY = dt.timedelta(days=1)


def _failed_renewal(email: str, due: dt.datetime) -> None:
    member = make_member(email)
    subscription = make_subscription(
        member,
        status=SubscriptionStatus.PAST_DUE,
        current_period_start=due,
        current_period_end=due + 30 * DAY,
    )
    db.session.add(
        Payment(
            member_id=member.id,
            subscription_id=subscription.id,
            stripe_invoice_id=f"in_{email}",
            amount=500,
            currency="EUR",
            status=PaymentStatus.FAILED,
            failed_at=due,
        )
    )


def _run_twice_on_two_workers(app: Flask) -> None:
    """Two runs of the job queued at once, taken by two workers side by side."""
    clock = FakeClock()
    for _ in range(2):
        jobs.enqueue(NOTICES, {})
    db.session.commit()
    clock.advance(seconds=5)
    run_side_by_side([Worker(app, clock=clock), Worker(app, clock=clock)])


def test_a_yearly_renewal_is_announced_once_ahead_of_time(
    app: Flask, mail_server: MailServer
) -> None:
    now = utcnow()
    tier = make_tier("Reader", monthly=500, yearly=5000)
    yearly = make_member("yearly@example.org", display_name="Yael")
    make_subscription(yearly, tier, interval=Interval.YEAR, current_period_end=now + 10 * DAY)
    # Not yet; monthly; and ending rather than renewing.
    later, monthly, leaving = (make_member() for _ in range(3))
    make_subscription(later, tier, interval=Interval.YEAR, current_period_end=now + 20 * DAY)
    make_subscription(monthly, tier, interval=Interval.MONTH, current_period_end=now + 5 * DAY)
    make_subscription(
        leaving,
        tier,
        interval=Interval.YEAR,
        current_period_end=now + 5 * DAY,
        cancel_at_period_end=True,
    )
    db.session.commit()

    _run_twice_on_two_workers(app)
    _run_twice_on_two_workers(app)

    [notice] = mail_server.messages
    assert notice["To"] == "yearly@example.org"
    assert notice["Subject"] == "Your support of The Test Gazette renews soon"
    date = f"{(now + 10 * DAY):%b} {(now + 10 * DAY).day}, {(now + 10 * DAY).year}"
    assert f"renews on {date}: we will charge €50.00" in body(notice)
    assert "http://localhost/account/support" in links(notice)
    assert "€50.00 a year" in html(notice)


def test_failed_payments_are_reminded_on_the_dunning_days_once_each(
    app: Flask, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    _failed_renewal("three@example.org", now - 3 * DAY - dt.timedelta(hours=1))
    _failed_renewal("today@example.org", now - dt.timedelta(hours=1))
    _failed_renewal("long-ago@example.org", now - 20 * DAY)
    db.session.commit()

    _run_twice_on_two_workers(app)
    _run_twice_on_two_workers(app)

    sent = {str(m["To"]): m for m in mail_server.messages}
    assert sorted(sent) == ["three@example.org", "today@example.org"]
    # Day 3 is the day that has come: day 0, which the worker missed, is not sent late.
    assert sent["three@example.org"]["Subject"] == (
        "Reminder: your payment to The Test Gazette did not go through"
    )
    assert sent["today@example.org"]["Subject"] == (
        "Your payment to The Test Gazette did not go through"
    )
    assert len(mail_server.messages) == 2

    # Four days on, the day-7 reminder of the first; the second reaches its day 3.
    later = now + 4 * DAY
    monkeypatch.setattr("supporters.billing.emails.utcnow", lambda: later)
    monkeypatch.setattr("supporters.billing.membership.utcnow", lambda: later)
    _run_twice_on_two_workers(app)
    _run_twice_on_two_workers(app)
    reminders = [m for m in mail_server.messages[2:]]
    assert sorted(str(m["To"]) for m in reminders) == ["three@example.org", "today@example.org"]
    day_seven = next(m for m in reminders if m["To"] == "three@example.org")
    assert "benefits are paused" in body(day_seven)


def test_the_dunning_days_are_a_setting() -> None:
    assert config.from_environ({"SUPPORTERS_DUNNING_DAYS": "7, 0,3,3"}) == {
        "DUNNING_DAYS": [0, 3, 7]
    }
    with pytest.raises(config.ConfigError, match="DUNNING_DAYS"):
        config.from_environ({"SUPPORTERS_DUNNING_DAYS": "0,three"})
    values = config.load("/nonexistent", {"DUNNING_DAYS": [3, 400]})
    assert "SUPPORTERS_DUNNING_DAYS must be days from 0 to 365." in config.problems_with(values)
    # A reminder sent on day 30 is forgotten when its message is pruned: it must outlive day 30.
    values = config.load("/nonexistent", {"DUNNING_DAYS": [0, 30], "MAIL_KEEP_DAYS": 20})
    assert any("MAIL_KEEP_DAYS must be at least 31" in p for p in config.problems_with(values))


def test_admins_set_the_dunning_days_and_the_workers_follow(
    app: Flask, mail_server: MailServer
) -> None:
    now = utcnow()
    _failed_renewal("two@example.org", now - 2 * DAY - dt.timedelta(hours=1))
    admin = make_member("admin@example.org", role=Role.ADMIN)
    db.session.commit()
    client = signed_in_client(app, admin)

    page = client.get("/staff/emails/schedule").get_data(as_text=True)
    assert 'value="0, 3, 7"' in page
    schedule = "/staff/emails/schedule"
    refused = submit(client, schedule, dunning_days="0, two", renewal_notice_days="14")
    assert refused.status_code == 400
    assert "Write whole numbers of days" in refused.get_data(as_text=True)
    too_long = submit(client, schedule, dunning_days="0, 120", renewal_notice_days="14")
    assert too_long.status_code == 400
    assert "Sent messages are kept 90 days" in too_long.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SiteSetting)) == 0

    saved = submit(client, schedule, dunning_days="2, 0", renewal_notice_days="30")
    assert saved.status_code == 302
    assert 'value="0, 2"' in client.get("/staff/emails/schedule").get_data(as_text=True)
    [entry] = db.session.scalars(
        sa.select(AuditEntry).where(AuditEntry.target_id == "DUNNING_DAYS")
    ).all()
    assert (entry.actor_id, entry.details) == (admin.id, {"from": [0, 3, 7], "to": [0, 2]})

    # Under the old schedule the day-0 notice would go; under the new one, day 2's reminder.
    _run_twice_on_two_workers(app)
    [reminder] = mail_server.messages
    assert reminder["To"] == "two@example.org"
    assert reminder["Subject"] == "Reminder: your payment to The Test Gazette did not go through"


def test_a_payment_notices_link_leads_its_member_to_their_card(
    app: Flask, mail_server: MailServer
) -> None:
    _failed_renewal("fay@example.org", utcnow() - dt.timedelta(hours=1))
    other = make_member("other@example.org")
    db.session.commit()
    mail_server.deliver()
    [link] = [x for x in links(mail_server.last_to("fay@example.org")) if "/card/" in x]
    path = link.removeprefix("http://localhost")

    visitor = app.test_client()
    asked = visitor.get(path)
    assert asked.status_code == 302 and asked.headers["Location"].startswith("/sign-in?next=")
    fay = db.session.scalars(sa.select(Member).where(Member.email == "fay@example.org")).one()
    landed = signed_in_client(app, fay).get(path)
    assert landed.headers["Location"] == "/account/support#card"
    wrong = signed_in_client(app, other).get(path, follow_redirects=True)
    assert "That link was sent to another account" in wrong.get_data(as_text=True)
