"""Without a Stripe key, joining goes through a local demo checkout and the same services."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing import checkout, customers
from supporters.billing.demo_checkout import CUSTOM_PRODUCT, DemoBackend
from supporters.billing.models import Payment, PaymentStatus, Subscription, SubscriptionStatus
from supporters.billing.provider import CheckoutRequest, NewPrice
from supporters.extensions import db
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import csrf_token, submit, text
from tests.smtp import sign_in_code


def _join(client: FlaskClient, **fields: str) -> str:
    response = submit(client, "/", action="/support", **fields)
    assert response.status_code == 303, text(response)
    return response.headers["Location"]


def test_join_pay_change_cancel_and_resume_in_the_demo(app: Flask) -> None:
    make_tier("reader", monthly=500, yearly=5000, position=1)
    make_tier("supporter", monthly=1000, yearly=10000, position=2)
    member = make_member("demo@example.org")
    db.session.commit()
    client = signed_in_client(app, member)

    demo_page = _join(client, tier="supporter", interval="month")
    assert demo_page.startswith("/billing/demo/")
    page = client.get(demo_page)
    assert "Pay €10.00" in text(page) and "no money moves" in text(page)

    declined = client.post(
        demo_page, data={"csrf_token": csrf_token(client, demo_page), "action": "decline"}
    )
    assert declined.status_code == 402 and "declined" in text(declined)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0

    paid = client.post(
        demo_page, data={"csrf_token": csrf_token(client, demo_page), "action": "pay"}
    )
    welcome = client.get(paid.headers["Location"])
    assert "Welcome, patron!" in text(welcome)
    subscription = db.session.scalars(sa.select(Subscription)).one()
    assert (subscription.status, subscription.amount, subscription.tier.slug) == (  # type: ignore[union-attr]
        SubscriptionStatus.ACTIVE,
        1000,
        "supporter",
    )
    payment = db.session.scalars(sa.select(Payment)).one()
    assert (payment.status, payment.amount, payment.subscription_id) == (
        PaymentStatus.PAID,
        1000,
        subscription.id,
    )

    # Reloading the success page changes nothing; joining again is refused with a way out.
    client.get(paid.headers["Location"])
    again = submit(client, "/", action="/support", tier="reader", interval="month")
    assert again.headers["Location"] == "/account/support"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 1

    changed = submit(
        client,
        "/account/support",
        action="/account/support/change",
        tier="custom",
        amount="7.50",
        interval="year",
    )
    assert changed.status_code == 302
    db.session.expire_all()
    assert (subscription.amount, subscription.interval.value, subscription.tier_id) == (
        750,
        "year",
        None,
    )

    submit(client, "/account/support", action="/account/support/cancel", reason="Moving abroad")
    db.session.expire_all()
    assert subscription.cancel_at_period_end and subscription.cancel_reason == "Moving abroad"
    assert "Resume my support" in text(client.get("/account/support"))
    submit(client, "/account/support", action="/account/support/resume")
    db.session.expire_all()
    assert not subscription.cancel_at_period_end


def test_a_second_demo_checkout_closes_the_first(app: Flask) -> None:
    make_tier("reader", monthly=500, yearly=5000, position=1)
    make_tier("supporter", monthly=1000, yearly=10000, position=2)
    member = make_member()
    db.session.commit()
    client = signed_in_client(app, member)
    first = _join(client, tier="supporter", interval="month")
    second = _join(client, tier="reader", interval="month")

    assert client.get(first).status_code == 410
    # The page was left open in another tab: paying it is refused too.
    token = csrf_token(client, second)
    assert client.post(first, data={"csrf_token": token, "action": "pay"}).status_code == 410
    paid = client.post(second, data={"csrf_token": token, "action": "pay"})
    assert "Welcome, patron!" in text(client.get(paid.headers["Location"]))
    assert db.session.scalars(sa.select(Subscription.amount)).all() == [500]


def test_a_second_demo_subscription_is_cancelled_and_refunded_too(app: Flask) -> None:
    member = make_member()
    db.session.commit()
    provider = DemoBackend()
    customer_id = customers.ensure_customer(member, provider)
    # Two pages opened past the services' one-open-page guard, both paid.
    with app.test_request_context():
        pages = [
            provider.create_checkout_session(
                CheckoutRequest(
                    customer_id=customer_id,
                    mode="subscription",
                    price_id=None,
                    new_price=NewPrice(500, "EUR", "month", CUSTOM_PRODUCT),
                    metadata={"member_id": str(member.id), "tier": "custom"},
                    client_reference_id=str(member.id),
                    success_url="http://localhost/support/welcome",
                    cancel_url="http://localhost/",
                    idempotency_key=f"tab-{tab}",
                )
            )
            for tab in "12"
        ]
        for page in pages:
            checkout.pay_demo_checkout(page.id)
            db.session.commit()

    statuses = db.session.scalars(sa.select(Subscription.status).order_by(Subscription.id))
    assert list(statuses) == [SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED]
    refunds = db.session.scalars(sa.select(Payment.refunded_amount).order_by(Payment.id))
    assert list(refunds) == [0, 500]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tier": "custom", "amount": "1", "interval": "month"}, "smallest amount"),
        ({"tier": "custom", "amount": "abc", "interval": "month"}, "Enter an amount such as"),
        ({"tier": "custom", "amount": "", "interval": "month"}, "Enter an amount"),
        ({"tier": "gone", "interval": "month"}, "Not a valid choice"),
    ],
)
def test_bad_choices_are_explained_and_nothing_is_written(
    app: Flask, fields: dict[str, str], message: str
) -> None:
    make_tier("reader")
    member = make_member()
    db.session.commit()
    client = signed_in_client(app, member)
    response = submit(client, "/", action="/support", **fields)
    assert response.status_code == 400
    assert message in text(response)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0


def test_a_visitor_confirms_their_email_then_continues_to_payment(app: Flask, mail_server) -> None:  # type: ignore[no-untyped-def]
    make_tier("reader", monthly=500, yearly=5000)
    db.session.commit()
    client = app.test_client()
    response = submit(
        client, "/", action="/support", tier="reader", interval="year", email="new@example.org"
    )
    assert response.headers["Location"] == "/sign-in/code"
    # The message has a plain-text part and an HTML one: the code is read from the text.
    code = sign_in_code(mail_server.last_to("new@example.org"))
    signed_in = submit(client, "/sign-in/code", code=code)
    continue_url = signed_in.headers["Location"]
    assert continue_url.startswith("/support/continue?")
    page = client.get(continue_url)
    assert "€50.00 a year" in text(page)
    to_checkout = client.post(continue_url, data={"csrf_token": csrf_token(client, continue_url)})
    assert to_checkout.status_code == 303 and to_checkout.headers["Location"].startswith(
        "/billing/demo/"
    )
