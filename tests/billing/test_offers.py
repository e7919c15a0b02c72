"""Offers: a signed single-use link that signs a member in once and leads to a checkout whose
first charge is deferred to the offer's date, through Stripe (the fake, over the real SDK) and
through the demo checkout."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.billing import offers
from supporters.billing.checkout import MINIMUM_DEFERRAL, first_charge_date
from supporters.billing.errors import BillingError
from supporters.billing.membership import MembershipStatus, is_entitled, membership_of
from supporters.billing.models import (
    Interval,
    Offer,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member, MemberSession, Role
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.factories import make_member, make_tier
from tests.helpers import csrf_token, submit, text

NOTE = "Remember to cancel your pledge on Patreon."


def path_of(url: str) -> str:
    return url.split("localhost", 1)[1]


def the_offer(offer_id: int) -> Offer:
    db.session.expire_all()
    return db.session.get_one(Offer, offer_id)


def sessions_of(member: Member) -> int:
    db.session.expire_all()
    query = sa.select(sa.func.count()).where(MemberSession.member_id == member.id)
    return int(db.session.scalar(query) or 0)


def follow(client: FlaskClient, link: str) -> Any:
    """Open the emailed link and press its button, as the member does."""
    return submit(client, link)


def test_the_link_signs_in_once_and_stripe_charges_first_on_the_offer_s_date(
    stripe_app: Flask, fake_stripe: FakeStripe, webhooks: Webhooks, synced_tiers: None
) -> None:
    member = make_member("moving@example.org", verified=False)
    tier = db.session.scalars(sa.select(Tier).where(Tier.slug == "supporter")).one()
    first_charge_at = (utcnow() + dt.timedelta(days=10)).replace(microsecond=0)
    offer, url = offers.create_offer(
        member, tier=tier, interval=Interval.MONTH, first_charge_at=first_charge_at, note=NOTE
    )
    db.session.commit()
    assert url.startswith("http://localhost/offer/") and offer.token_hash not in url
    link = path_of(url)

    client = stripe_app.test_client()
    page = text(client.get(link))
    assert "An invitation for moving@example.org" in page
    assert "Support at €10.00 a month (Supporter)" in page and NOTE in page
    assert "first charge on" in page
    assert the_offer(offer.id).opened_at is None  # looking writes nothing

    signed_in = follow(client, link)
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == f"/account/offers/{offer.id}"
    opened = the_offer(offer.id)
    assert opened.is_opened and not opened.is_used
    assert db.session.get_one(Member, member.id).email_verified_at is not None

    # The link works once: another browser (or the same one later) is told to sign in.
    stranger = stripe_app.test_client()
    again = stranger.get(link)
    assert again.status_code == 410 and "already been used" in text(again)
    assert f"next=/account/offers/{offer.id}" in text(again).replace("%2F", "/")
    token = csrf_token(stranger, "/")
    assert stranger.post(link, data={"csrf_token": token}).status_code == 410
    assert sessions_of(member) == 1
    assert stranger.get(f"/account/offers/{offer.id}").status_code == 302  # to sign in

    offer_page = client.get(f"/account/offers/{offer.id}")
    assert offer_page.status_code == 200
    assert re.search(
        r'checked[^>]*value="supporter"|value="supporter"[^>]*checked', text(offer_page)
    )
    to_checkout = submit(client, f"/account/offers/{offer.id}", tier="supporter", interval="month")
    assert to_checkout.status_code == 303
    session_id = re.search(r"/c/pay/(cs_test_\w+)", to_checkout.headers["Location"])
    assert session_id
    [create] = [r for r in fake_stripe.requests if r.path == "/v1/checkout/sessions"]
    trial_end = int(first_charge_at.timestamp())
    assert create.params["subscription_data"]["trial_end"] == str(trial_end)
    assert create.params["metadata"]["offer"] == str(offer.id)

    assert set(webhooks.deliver(*fake_stripe.complete_checkout(session_id.group(1)))) == {200}

    subscription = db.session.scalars(sa.select(Subscription)).one()
    assert subscription.status is SubscriptionStatus.TRIALING
    assert subscription.current_period_end == first_charge_at
    assert db.session.scalars(sa.select(Payment)).all() == []  # nothing charged yet
    assert membership_of(member.id) is MembershipStatus.ACTIVE and is_entitled(member.id)
    used = the_offer(offer.id)
    assert used.is_used and used.subscription_id == subscription.id
    support = text(client.get("/account/support"))
    assert "First charge on" in support
    taken = client.get(f"/account/offers/{offer.id}")
    assert taken.status_code == 410 and "already taken up" in text(taken)

    # The trial ends on the offer's date: the first real invoice is charged then.
    assert set(webhooks.deliver(*fake_stripe.renew(subscription.stripe_subscription_id or ""))) == {
        200
    }
    db.session.expire_all()
    assert db.session.get_one(Subscription, subscription.id).status is SubscriptionStatus.ACTIVE
    payment = db.session.scalars(sa.select(Payment)).one()
    assert (payment.status, payment.amount, payment.paid_at) == (
        PaymentStatus.PAID,
        1000,
        first_charge_at,
    )


def test_the_demo_checkout_defers_the_first_charge_the_same_way(app: Flask) -> None:
    member = make_member("demo-move@example.org")
    make_tier("reader", monthly=500, yearly=5000, position=1)
    first_charge_at = (utcnow() + dt.timedelta(days=20)).replace(microsecond=0)
    offer, url = offers.create_offer(
        member, amount=700, interval=Interval.MONTH, first_charge_at=first_charge_at, note=NOTE
    )
    db.session.commit()
    client = app.test_client()
    assert follow(client, path_of(url)).status_code == 303

    page = client.get(f"/account/offers/{offer.id}")
    assert "Support at €7.00 a month" in text(page)
    assert 'value="7.00"' in text(page)
    demo_page = submit(
        client, f"/account/offers/{offer.id}", tier="custom", amount="7.00", interval="month"
    ).headers["Location"]
    assert demo_page.startswith("/billing/demo/")
    assert "Nothing to pay today" in text(client.get(demo_page))
    paid = client.post(
        demo_page, data={"csrf_token": csrf_token(client, demo_page), "action": "pay"}
    )
    assert paid.status_code == 303
    welcome = text(client.get(paid.headers["Location"]))
    assert "Welcome, patron!" in welcome and "your first payment is on" in welcome

    subscription = db.session.scalars(sa.select(Subscription)).one()
    assert (subscription.status, subscription.amount, subscription.current_period_end) == (
        SubscriptionStatus.TRIALING,
        700,
        first_charge_at,
    )
    assert db.session.scalars(sa.select(Payment)).all() == []
    assert is_entitled(member.id) and the_offer(offer.id).is_used
    assert "First charge on" in text(client.get("/account/support"))


def _expired(link: str, offer: Offer) -> str:
    db.session.execute(
        sa.update(Offer)
        .where(Offer.id == offer.id)
        .values(
            created_at=utcnow() - dt.timedelta(days=31), expires_at=utcnow() - dt.timedelta(days=1)
        )
    )
    return link


@pytest.mark.parametrize(
    ("tamper", "status", "message"),
    [
        (lambda link, offer: link[:-1] + ("A" if link[-1] != "A" else "B"), 404, "not valid"),
        (lambda link, offer: link.replace(f"/{offer.id}.", f"/{offer.id + 1}."), 404, "not valid"),
        (lambda link, offer: "/offer/not-a-token", 404, "not valid"),
        (_expired, 410, "expired"),
    ],
    ids=["altered", "another-offer", "forged", "expired"],
)
def test_a_forged_altered_or_expired_link_is_refused_and_writes_nothing(
    app: Flask, tamper: Any, status: int, message: str
) -> None:
    member = make_member()
    offer, url = offers.create_offer(member, amount=500)
    db.session.commit()
    link = tamper(path_of(url), offer)
    db.session.commit()
    client = app.test_client()

    page = client.get(link)
    assert page.status_code == status and message in text(page)
    token = csrf_token(client, "/")
    assert client.post(link, data={"csrf_token": token}).status_code == status
    assert the_offer(offer.id).opened_at is None and sessions_of(member) == 0
    assert client.get("/account/support").status_code == 302  # not signed in


def test_a_new_link_retires_the_old_one_and_staff_are_not_signed_in_by_links(app: Flask) -> None:
    member = make_member()
    offer, first = offers.create_offer(member, amount=500)
    second = offers.offer_url(offer)
    db.session.commit()
    client = app.test_client()
    assert client.get(path_of(first)).status_code == 404
    assert follow(client, path_of(second)).status_code == 303

    editor = make_member(role=Role.STAFF)
    _, link = offers.create_offer(editor, amount=500)
    db.session.commit()
    refused = follow(app.test_client(), path_of(link))
    assert refused.status_code == 403 and "Staff accounts sign in" in text(refused)
    assert sessions_of(editor) == 0


@pytest.mark.parametrize(
    ("ahead", "expected"),
    [
        (None, None),
        (dt.timedelta(days=-1), None),  # passed: charged at checkout
        (dt.timedelta(hours=3), MINIMUM_DEFERRAL),  # sooner than Checkout allows: 48 hours on
        (dt.timedelta(days=9), dt.timedelta(days=9)),
    ],
)
def test_the_first_charge_is_never_before_the_promised_date(
    ahead: dt.timedelta | None, expected: dt.timedelta | None
) -> None:
    now = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
    requested = None if ahead is None else now + ahead
    assert first_charge_date(requested, now) == (None if expected is None else now + expected)


def test_an_offer_without_a_date_is_charged_today_and_bad_offers_are_refused(
    app: Flask,
) -> None:
    member = make_member()
    tier = make_tier()
    offer, url = offers.create_offer(member, tier=tier, interval=Interval.YEAR)
    db.session.commit()
    page = " ".join(text(app.test_client().get(path_of(url))).split())
    assert "Support at €100.00 a year (Supporter), first charge today." in page

    for bad in (
        {"tier": tier, "amount": 500},
        {},
        {"amount": 1},  # below the site's minimum
        {"amount": 500, "first_charge_at": utcnow() + dt.timedelta(days=800)},
        {"amount": 500, "valid_for": dt.timedelta(0)},
    ):
        with pytest.raises(BillingError):
            offers.create_offer(member, **bad)
