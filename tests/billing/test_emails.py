"""What patrons are emailed about their money: each message to the right person, with the right
subject, links and both parts, once, whichever path (Stripe's webhooks, the success page, the
demo checkout) brings the change, and however often it is replayed."""

from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing.models import Payment, PaymentStatus
from supporters.extensions import db
from supporters.members.models import Member
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_demo_checkout import _join
from tests.billing.test_stripe import join
from tests.billing.test_tier_prices import subscribed
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import csrf_token, submit
from tests.smtp import MailServer, body

DAY = 24 * 60 * 60


def html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def subjects(mail_server: MailServer, address: str) -> list[str]:
    return [str(message["Subject"]) for message in mail_server.to(address)]


def links(message: EmailMessage) -> list[str]:
    return re.findall(r"https?://\S+", body(message))


def on_the_fakes_clock(monkeypatch: pytest.MonkeyPatch, fake: FakeStripe) -> None:
    """Billing's notices read the time that Stripe's objects were stamped with."""
    now = lambda: dt.datetime.fromtimestamp(fake.now(), dt.UTC)  # noqa: E731
    monkeypatch.setattr("supporters.billing.emails.utcnow", now)
    monkeypatch.setattr("supporters.billing.membership.utcnow", now)


def test_joining_paying_failing_recovering_and_leaving_through_stripe(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    mail_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_the_fakes_clock(monkeypatch, fake_stripe)
    member, client = patron
    subscription_id = subscribed(fake_stripe, webhooks, client, "reader")
    welcome, receipt = mail_server.to("patron@example.org")
    assert welcome["Subject"] == "Welcome to The Test Gazette, patron!"
    assert "Hello Pat Ron," in body(welcome) and "http://localhost/polls/" in links(welcome)
    assert receipt["Subject"] == "Your receipt from The Test Gazette"
    first = db.session.scalars(sa.select(Payment)).one()
    assert first.receipt_url.startswith("https://invoice.stripe.com/")
    for text in (body(receipt), html(receipt)):
        assert "€5.00" in text and "Reader, €5.00 a month" in text
        assert first.receipt_url in text
    assert "Period: " in body(receipt)

    # Stripe sends events again, the success page is reloaded: nothing is sent twice.
    assert set(webhooks.deliver(*fake_stripe.events)) == {200}
    assert len(mail_server.to("patron@example.org")) == 2

    webhooks.deliver(*fake_stripe.renew(subscription_id))
    assert subjects(mail_server, "patron@example.org")[2:] == ["Your receipt from The Test Gazette"]

    webhooks.deliver(*fake_stripe.renew(subscription_id, outcome="failed"))
    failed = mail_server.last_to("patron@example.org")
    assert failed["Subject"] == "Your payment to The Test Gazette did not go through"
    assert "benefits continue until" in body(failed)
    [fix_link] = [link for link in links(failed) if "/account/support/card/" in link]
    assert f'href="{fix_link}"' in html(failed)

    webhooks.deliver(*fake_stripe.pay_latest_invoice(subscription_id))
    recovered = mail_server.last_to("patron@example.org")
    assert recovered["Subject"] == "Your payment to The Test Gazette went through"
    assert "your support continues" in body(recovered) and "€5.00" in body(recovered)

    submit(client, "/account/support", action="/account/support/cancel", reason="")
    scheduled = mail_server.last_to("patron@example.org")
    assert scheduled["Subject"] == "Your support of The Test Gazette will end"
    assert "http://localhost/account/support" in links(scheduled)
    webhooks.deliver(*fake_stripe.end_subscription(subscription_id))
    ended = mail_server.last_to("patron@example.org")
    assert ended["Subject"] == "Your support of The Test Gazette has ended"
    assert "http://localhost/" in links(ended)

    assert set(webhooks.deliver(*fake_stripe.events)) == {200}
    assert len(mail_server.to("patron@example.org")) == 7
    # Nobody else was written to.
    assert {str(m["To"]) for m in mail_server.messages} == {"patron@example.org"}


def test_a_gift_gets_its_receipt_once(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
    mail_server: MailServer,
) -> None:
    _, client = patron
    session_id = join(client, tier="custom", amount="25", interval="once")
    events = fake_stripe.complete_checkout(session_id)
    webhooks.deliver(*events, *events)
    client.get(fake_stripe.success_redirect_url(session_id).split("localhost", 1)[1])
    [gift] = mail_server.to("patron@example.org")
    assert gift["Subject"] == "Your receipt from The Test Gazette: thank you for your gift"
    assert "€25.00" in body(gift) and "A one-time gift" in body(gift)
    assert any(link.startswith("https://pay.stripe.com/receipts/") for link in links(gift))


def test_the_demo_checkout_sends_what_stripe_would(app: Flask, mail_server: MailServer) -> None:
    make_tier("supporter", monthly=1000, yearly=10000)
    member = make_member("demo@example.org", display_name="Dee")
    db.session.commit()
    client = signed_in_client(app, member)
    demo_page = _join(client, tier="supporter", interval="month")
    paid = client.post(
        demo_page, data={"csrf_token": csrf_token(client, demo_page), "action": "pay"}
    )
    client.get(paid.headers["Location"])  # the success page records nothing twice
    submit(
        client,
        "/account/support",
        action="/account/support/change",
        tier="custom",
        amount="7.50",
        interval="year",
    )
    submit(client, "/account/support", action="/account/support/cancel", reason="")
    submit(client, "/account/support", action="/account/support/resume")
    assert subjects(mail_server, "demo@example.org") == [
        "Welcome to The Test Gazette, patron!",
        "Your receipt from The Test Gazette",
        "Your support of The Test Gazette has a new amount",
        "Your support of The Test Gazette will end",
    ]
    changed = mail_server.to("demo@example.org")[2]
    assert "now €7.50 a year (it was €10.00 a month)" in body(changed)
    assert "now €7.50 a year (it was €10.00 a month)" in html(changed)


def test_a_failed_payment_rolled_back_with_its_change_sends_nothing(
    app: Flask, mail_server: MailServer
) -> None:
    make_tier("supporter", monthly=1000, yearly=10000)
    member = make_member("demo@example.org")
    db.session.commit()
    client = signed_in_client(app, member)
    demo_page = _join(client, tier="supporter", interval="month")
    session_id = demo_page.rsplit("/", 1)[1]
    from supporters.billing.checkout import pay_demo_checkout

    with app.test_request_context():
        pay_demo_checkout(session_id)
        db.session.rollback()
    assert mail_server.messages == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0


def test_messages_are_written_in_the_members_language(
    make_app: Any, mail_server: MailServer
) -> None:
    app = make_app(LANGUAGES=["en", "de"])
    with app.app_context():
        make_tier("supporter", monthly=1000, yearly=10000)
        member = make_member("anna@example.org", locale="de")
        db.session.commit()
        client = signed_in_client(app, member)
        demo_page = _join(client, tier="supporter", interval="year")
        client.post(demo_page, data={"csrf_token": csrf_token(client, demo_page), "action": "pay"})
        receipt = mail_server.last_to("anna@example.org")
        payment = db.session.scalars(sa.select(Payment)).one()
        assert payment.status is PaymentStatus.PAID and payment.paid_at is not None
    # No German catalogue ships yet: the words fall back to English, but money and dates are
    # written as a German reader writes them.
    assert "100,00\xa0€" in body(receipt)
    assert f"{payment.paid_at.day}.{payment.paid_at.month:02d}.{payment.paid_at.year}" in body(
        receipt
    )
    assert 'lang="de"' in html(receipt)
