"""What the app logs, at every level, holds no code, token, email body or secret."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.extensions import db
from supporters.members.models import MemberSession
from tests.billing.conftest import WEBHOOK_SECRET, Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.conftest import TEST_SECRET_KEY
from tests.factories import make_member
from tests.helpers import submit, text
from tests.smtp import MailServer, body, sign_in_code, sign_in_link

# Loggers of the test's own servers, not the app's: the SMTP server that receives the messages
# logs every line of them at DEBUG, as a mail server may.
HARNESS = ("mail.log",)


def test_a_sign_in_a_join_and_webhooks_log_no_secret(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    mail_server: MailServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its loggers at WARNING unless asked: as an operator debugging would.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    make_member("reader@example.org", display_name="Reader")
    db.session.commit()

    # A member signs in with the emailed code.
    reader = stripe_app.test_client()
    submit(reader, "/sign-in", email="reader@example.org")
    [sign_in_mail] = mail_server.to("reader@example.org")
    entered = submit(reader, "/sign-in/code", code=sign_in_code(sign_in_mail))
    assert entered.status_code == 302
    assert "reader@example.org" in text(reader.get("/account"))

    # A new reader joins from the support page: code, confirmation, Checkout, webhooks.
    joiner = stripe_app.test_client()
    start = submit(
        joiner, "/", action="/support", tier="reader", interval="month", email="new@example.org"
    )
    assert start.status_code == 302
    [join_mail] = mail_server.to("new@example.org")
    confirmed = submit(joiner, "/sign-in/code", code=sign_in_code(join_mail))
    checkout = submit(joiner, confirmed.headers["Location"])
    assert checkout.status_code == 303
    session_id = re.search(r"/c/pay/(cs_test_\w+)", checkout.headers["Location"])
    assert session_id
    events = fake_stripe.complete_checkout(session_id.group(1))
    subscription_id = fake_stripe.get(session_id.group(1))["subscription"]
    events += fake_stripe.renew(subscription_id, outcome="failed")
    assert set(webhooks.deliver(*events)) == {200}
    assert webhooks.deliver(events[0], secret="whsec_someone_else") == [400]
    welcome = joiner.get(
        fake_stripe.success_redirect_url(session_id.group(1)).split("localhost", 1)[1]
    )
    assert welcome.status_code == 200

    logged = "\n".join(
        record.getMessage() + (f"\n{record.exc_text}" if record.exc_text else "")
        for record in caplog.records
        if not record.name.startswith(HARNESS)
    )
    # Everything was heard: the app, the Stripe SDK and its HTTP pool, the SQL.
    for heard in ("Mail sent to", "Stripe event", "API response body", "/v1/checkout", "SELECT"):
        assert heard in logged, heard
    secrets: dict[str, Any] = {
        "the Stripe secret key": stripe_app.config["STRIPE_SECRET_KEY"],
        "the webhook secret": WEBHOOK_SECRET,
        "the secret key": TEST_SECRET_KEY,
    }
    for n, message in enumerate((sign_in_mail, join_mail)):
        secrets[f"email {n}'s body"] = body(message).strip()
        secrets[f"email {n}'s link"] = sign_in_link(message).rsplit("/", 1)[1]
        secrets[f"email {n}'s code"] = re.compile(rf"(?<!\d){sign_in_code(message)}(?!\d)")
    for n, session in enumerate(db.session.scalars(sa.select(MemberSession.id))):
        secrets[f"session {n}"] = session
    secrets["a client secret"] = re.compile(r"_secret_\w")
    # A timestamp's microseconds (in the SQL rows logged at DEBUG) are six digits too.
    logged = re.sub(r"datetime\.datetime\([^)]*\)", "datetime", logged)
    found = [
        name
        for name, secret in secrets.items()
        if (secret.search(logged) if isinstance(secret, re.Pattern) else secret in logged)
    ]
    assert found == []
