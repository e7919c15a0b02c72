"""The invitation to move over from Patreon: one offer per patron by email, its link signing in
once and leading to a checkout first charged when Patreon would have charged next (Stripe, over
the real SDK against the fake, and the demo checkout); reminders on the days staff set."""

from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters import jobs
from supporters.billing.models import Offer, Subscription, SubscriptionStatus, Tier
from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.worker import Worker
from supporters.members.models import Member, Role
from supporters.patreon import invitations
from supporters.patreon.models import ChargeFrequency, ImportedPatron, PatronStatus
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_emails import html
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import csrf_token, submit, text
from tests.jobs.conftest import FakeClock
from tests.jobs.test_schedule import run_side_by_side
from tests.smtp import MailServer, body
from tests.voting.factories import make_subscription

DAY = dt.timedelta(days=1)


def make_patron(email: str, **fields: Any) -> ImportedPatron:
    """An imported patron: by default active and paid up, €10 a month, charged again in 12 days."""
    now = utcnow().replace(microsecond=0)
    member = make_member(email, verified=False)
    values: dict[str, Any] = {
        "status": PatronStatus.ACTIVE,
        "pledge_amount": 1000,
        "currency": "EUR",
        "charge_frequency": ChargeFrequency.MONTHLY,
        "last_charge_at": now - 18 * DAY,
        "last_charge_status": "Paid",
        "next_charge_at": now + 12 * DAY,
        **fields,
    }
    patron = ImportedPatron(member_id=member.id, **values)
    db.session.add(patron)
    db.session.flush()
    return patron


def link_in(message: EmailMessage) -> str:
    """The path of the offer link in a message."""
    found = re.search(r"http://localhost(/offer/\S+)", body(message))
    assert found, body(message)
    return found.group(1)


def figures(client: FlaskClient) -> dict[str, str]:
    page = text(client.get("/staff/patreon/"))
    return dict(re.findall(r'data-figure="(\w+)">(\d+)<', page))


def invite_everyone(app: Flask, admin: FlaskClient) -> None:
    response = submit(admin, "/staff/patreon/", "/staff/patreon/invite", email="")
    assert response.status_code == 302, text(response)


def test_the_invitation_signs_in_once_and_stripe_charges_first_on_patreon_s_next_date(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    mail_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    supporter = db.session.scalars(sa.select(Tier).where(Tier.slug == "supporter")).one()
    paid_up = make_patron("paid@example.org", tier_id=supporter.id)
    next_charge_at = paid_up.next_charge_at
    assert next_charge_at is not None
    # Declined on Patreon, an annual pledge that maps to no tier, in the site's currency.
    make_patron(
        "declined@example.org",
        status=PatronStatus.DECLINED,
        last_charge_status="Declined",
        charge_frequency=ChargeFrequency.ANNUAL,
        pledge_amount=6000,
    )
    make_patron("dollars@example.org", currency="USD")  # no tier, another currency: no offer
    admin = signed_in_client(stripe_app, make_member(role=Role.ADMIN))
    # Small batches: inviting everyone takes several jobs, each queuing the next.
    monkeypatch.setattr(invitations, "BATCH", 1)

    invite_everyone(stripe_app, admin)
    invite_everyone(stripe_app, admin)  # twice: still one invitation each
    [invitation] = mail_server.to("paid@example.org")
    assert len(mail_server.to("declined@example.org")) == 1
    assert mail_server.to("dollars@example.org") == []
    assert invitation["Subject"] == "Support The Test Gazette directly, without Patreon"
    assert "Supporter, at €10.00 a month" in body(invitation)
    assert "first charge here is on" in body(invitation)
    assert "cancel your pledge on Patreon" in body(invitation)
    assert invitation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    declined = mail_server.to("declined@example.org")[0]
    assert "€60.00 a year" in body(declined) and "first charge is when you confirm" in body(
        declined
    )
    assert figures(admin)["invited"] == "2" and figures(admin)["opened"] == "0"

    link = link_in(invitation)
    client = stripe_app.test_client()
    signed_in = submit(client, link)
    assert signed_in.status_code == 303
    offer_page = signed_in.headers["Location"]
    assert stripe_app.test_client().get(link).status_code == 410  # the link works once
    page = text(client.get(offer_page))
    assert "Remember to cancel your pledge on Patreon" in page
    assert figures(admin)["opened"] == "1"

    to_checkout = submit(client, offer_page, tier="supporter", interval="month")
    assert to_checkout.status_code == 303
    session_id = re.search(r"/c/pay/(cs_test_\w+)", to_checkout.headers["Location"])
    assert session_id
    [create] = [r for r in fake_stripe.requests if r.path == "/v1/checkout/sessions"]
    assert create.params["subscription_data"]["trial_end"] == str(int(next_charge_at.timestamp()))
    assert set(webhooks.deliver(*fake_stripe.complete_checkout(session_id.group(1)))) == {200}

    subscription = db.session.scalars(sa.select(Subscription)).one()
    assert subscription.status is SubscriptionStatus.TRIALING
    assert subscription.current_period_end == next_charge_at
    assert {k: v for k, v in figures(admin).items() if k in ("invited", "opened", "moved")} == {
        "invited": "2",
        "opened": "1",
        "moved": "1",
    }


def test_one_patron_invited_from_the_page_moves_through_the_demo_checkout(app: Flask) -> None:
    reader = make_tier("reader", name="Reader", monthly=500, yearly=5000, position=1)
    patron = make_patron("demo@example.org", tier_id=reader.id, pledge_amount=500)
    next_charge_at = patron.next_charge_at
    admin = signed_in_client(app, make_member(role=Role.ADMIN))

    unknown = submit(admin, "/staff/patreon/", "/staff/patreon/invite", email="who@example.org")
    assert unknown.status_code == 409 and "No patron imported" in text(unknown)
    sent = submit(admin, "/staff/patreon/", "/staff/patreon/invite", email="Demo@Example.org")
    assert sent.status_code == 302
    again = submit(admin, "/staff/patreon/", "/staff/patreon/invite", email="demo@example.org")
    assert again.status_code == 409 and "invited already" in text(again)
    offer = db.session.scalars(sa.select(Offer)).one()
    assert (offer.tier_id, offer.first_charge_at) == (reader.id, next_charge_at)

    # The offer's link, as emailed; the member follows it and pays through the demo checkout.
    message = db.session.scalars(
        sa.select(sa.text("text_body")).select_from(sa.table("outbox_messages"))
    ).one()
    link = re.search(r"http://localhost(/offer/\S+)", message)
    assert link
    client = app.test_client()
    offer_page = submit(client, link.group(1)).headers["Location"]
    demo_page = submit(client, offer_page, tier="reader", interval="month").headers["Location"]
    assert "Nothing to pay today" in text(client.get(demo_page))
    paid = client.post(
        demo_page, data={"csrf_token": csrf_token(client, demo_page), "action": "pay"}
    )
    assert paid.status_code == 303
    subscription = db.session.scalars(sa.select(Subscription)).one()
    assert (subscription.status, subscription.current_period_end) == (
        SubscriptionStatus.TRIALING,
        next_charge_at,
    )
    assert figures(admin)["moved"] == "1"


def _twice_on_two_workers(app: Flask, kind: str = invitations.REMINDERS) -> None:
    """Two runs of the job queued at once, taken by two workers side by side."""
    clock = FakeClock()
    for _ in range(2):
        jobs.enqueue(kind, {})
    db.session.commit()
    clock.advance(seconds=5)
    run_side_by_side([Worker(app, clock=clock), Worker(app, clock=clock)])


def test_reminders_go_out_on_the_days_staff_set_once_each_and_stop(
    app: Flask, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = make_tier("reader", name="Reader", monthly=500, yearly=5000)
    for email in ("stays@example.org", "moves@example.org", "stops@example.org"):
        make_patron(email, tier_id=tier.id, pledge_amount=500)
    admin = signed_in_client(app, make_member(role=Role.ADMIN))
    bad = submit(admin, "/staff/patreon/", "/staff/patreon/reminders", reminder_days="0, x")
    assert bad.status_code == 400
    saved = submit(admin, "/staff/patreon/", "/staff/patreon/reminders", reminder_days="21, 5")
    assert saved.status_code == 302
    _twice_on_two_workers(app, invitations.INVITE)
    invite_everyone(app, admin)
    invitations_sent = {str(m["To"]): m for m in mail_server.messages}
    assert len(mail_server.messages) == len(invitations_sent) == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Offer)) == 3

    def on_day(days: int) -> list[EmailMessage]:
        later = utcnow() + days * DAY + dt.timedelta(hours=1)
        monkeypatch.setattr(invitations, "utcnow", lambda: later)
        before = len(mail_server.messages)
        _twice_on_two_workers(app)
        _twice_on_two_workers(app)
        return mail_server.messages[before:]

    assert on_day(4) == []
    day_five = on_day(5)
    assert sorted(str(m["To"]) for m in day_five) == sorted(invitations_sent)
    reminder = next(m for m in day_five if m["To"] == "stays@example.org")
    assert reminder["Subject"] == "Reminder: your invitation to support The Test Gazette directly"
    assert "Reader, at €5.00 a month" in html(reminder)
    # The fresh link works; the invitation's link no longer does.
    old_link = link_in(invitations_sent["stays@example.org"])
    assert app.test_client().get(old_link).status_code == 404
    assert app.test_client().get(link_in(reminder)).status_code == 200
    assert on_day(6) == []

    # One moves over; another stops this mail with the one-click link of their reminder.
    moved = db.session.scalars(sa.select(Member).where(Member.email == "moves@example.org")).one()
    make_subscription(moved, tier)
    db.session.commit()
    stopper = next(m for m in day_five if m["To"] == "stops@example.org")
    unsubscribe = str(stopper["List-Unsubscribe"]).strip("<>").split("localhost", 1)[1]
    assert app.test_client().post(unsubscribe).status_code in (200, 204)

    day_21 = on_day(21)
    assert [str(m["To"]) for m in day_21] == ["stays@example.org"]
    assert on_day(22) == []
    # Past the invitation's expiry, nothing more is sent whatever the days say.
    submit(admin, "/staff/patreon/", "/staff/patreon/reminders", reminder_days="5, 21, 90")
    assert on_day(90) == []
