"""A tier's new price is made in Stripe as an admin saves it; patrons keep the price they pay.

The real SDK and gateway talk to the fake Stripe; webhooks arrive signed, as in production.
"""

from __future__ import annotations

import socket
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from supporters.audit import AuditEntry
from supporters.billing.models import Payment, Subscription, Tier
from supporters.extensions import db
from supporters.members.models import Member, Role
from supporters.money import to_decimal
from tests.billing.conftest import Webhooks
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_stripe import join, posts
from tests.billing.test_webhooks import _point_stripe_at
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import submit, text


def admin_client(app: Flask) -> FlaskClient:
    admin = make_member("admin@example.org", role=Role.ADMIN, display_name="Ad Min")
    db.session.commit()
    return signed_in_client(app, admin)


def tier_named(slug: str) -> Tier:
    db.session.expire_all()
    return db.session.scalars(sa.select(Tier).where(Tier.slug == slug)).one()


def tier_form(tier: Tier, **changes: str) -> dict[str, str]:
    """The edit form of a tier as the page fills it in, with some fields changed."""
    form = {
        "name": tier.name,
        "slug": tier.slug,
        "description": tier.description,
        "currency": tier.currency,
        "monthly_amount": str(to_decimal(tier.monthly_amount, tier.currency)),
        "yearly_amount": str(to_decimal(tier.yearly_amount, tier.currency)),
        "position": str(tier.position),
        "is_active": "y",
    }
    return form | changes


def closed_port() -> str:
    """The address of a port on 127.0.0.1 where nothing listens: Stripe cannot be reached."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def subscribed(fake: FakeStripe, webhooks: Webhooks, client: FlaskClient, tier: str) -> str:
    """The signed-in reader joins a tier monthly and pays; the Stripe subscription's id."""
    session_id = join(client, tier=tier, interval="month")
    webhooks.deliver(*fake.complete_checkout(session_id))
    return str(fake.get(session_id)["subscription"])


def item_price(fake: FakeStripe, subscription_id: str) -> str:
    return str(fake.get(subscription_id)["items"]["data"][0]["price"]["id"])


def test_a_saved_price_is_what_the_next_checkout_charges_and_patrons_keep_theirs(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    subscription_id = subscribed(fake_stripe, webhooks, client, "reader")
    reader = tier_named("reader")
    old_monthly, old_yearly = reader.stripe_monthly_price_id, reader.stripe_yearly_price_id
    assert old_monthly and old_yearly

    admin = admin_client(stripe_app)
    url = f"/staff/tiers/{reader.id}"
    response = submit(admin, url, **tier_form(reader, monthly_amount="6"))
    assert response.status_code == 302

    reader = tier_named("reader")
    new_monthly = reader.stripe_monthly_price_id
    assert reader.monthly_amount == 600 and new_monthly not in (None, old_monthly)
    price = fake_stripe.get(new_monthly or "")
    assert (price["unit_amount"], price["active"], price["product"]) == (
        600,
        True,
        reader.stripe_product_id,
    )
    assert fake_stripe.get(old_monthly)["active"] is False
    # The yearly price did not change: it is kept, and still sold.
    assert reader.stripe_yearly_price_id == old_yearly and fake_stripe.get(old_yearly)["active"]
    entry = db.session.scalars(sa.select(AuditEntry)).one()
    assert entry.details == {
        "changes": {
            "monthly_amount": [500, 600],
            "stripe_monthly_price_id": [old_monthly, new_monthly],
        }
    }

    # The support page and the next checkout agree on the new amount.
    assert "Reader · €6.00 a month" in text(stripe_app.test_client().get("/"))
    newcomer = signed_in_client(stripe_app, make_member("new@example.org"))
    join(newcomer, tier="reader", interval="month")
    checkout = posts(fake_stripe, "/v1/checkout/sessions")[-1]
    assert checkout.params["line_items"][0]["price"] == new_monthly

    # The patron who joined before renews at the price they joined at, still in the tier.
    webhooks.deliver(*fake_stripe.renew(subscription_id))
    assert item_price(fake_stripe, subscription_id) == old_monthly
    db.session.expire_all()
    subscription = db.session.scalars(
        sa.select(Subscription).where(Subscription.member_id == member.id)
    ).one()
    assert (subscription.amount, subscription.tier_id, subscription.stripe_price_id) == (
        500,
        reader.id,
        old_monthly,
    )
    renewal = db.session.scalars(sa.select(Payment).order_by(Payment.id.desc())).first()
    assert renewal is not None and renewal.amount == 500
    assert "1 patron pays an older price of this tier" in text(admin.get(url))


def test_a_tier_is_not_saved_while_stripe_cannot_be_reached(
    stripe_app: Flask, fake_stripe: FakeStripe, synced_tiers: None
) -> None:
    admin = admin_client(stripe_app)
    reader = tier_named("reader")
    stored = (reader.monthly_amount, reader.stripe_monthly_price_id)
    url = f"/staff/tiers/{reader.id}"
    form = tier_form(reader, name="Reader plus", monthly_amount="6.50")

    _point_stripe_at(stripe_app, closed_port())
    response = submit(admin, url, **form)
    assert response.status_code == 502
    page = text(response)
    assert "Stripe could not be reached, so nothing was saved" in page
    assert 'value="Reader plus"' in page and 'value="6.50"' in page  # the form is kept
    added = submit(
        admin,
        "/staff/tiers/new",
        name="Champion",
        slug="champion",
        currency="EUR",
        monthly_amount="25",
        yearly_amount="250",
        is_active="y",
    )
    assert added.status_code == 502 and 'value="champion"' in text(added)

    reader = tier_named("reader")
    assert (reader.name, reader.monthly_amount, reader.stripe_monthly_price_id) == (
        "Reader",
        *stored,
    )
    assert db.session.scalar(sa.select(Tier).where(Tier.slug == "champion")) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0
    assert "Reader · €5.00 a month" in text(stripe_app.test_client().get("/"))

    # Once Stripe answers again, the same form saves, and checkout sells the new price.
    _point_stripe_at(stripe_app, fake_stripe.api_base)
    assert submit(admin, url, **form).status_code == 302
    reader = tier_named("reader")
    assert (reader.name, reader.monthly_amount) == ("Reader plus", 650)
    assert fake_stripe.get(reader.stripe_monthly_price_id or "")["unit_amount"] == 650
    assert fake_stripe.get(reader.stripe_product_id or "")["name"] == "Reader plus"


def test_a_new_tier_is_for_sale_in_stripe_once_added(
    stripe_app: Flask, fake_stripe: FakeStripe, synced_tiers: None
) -> None:
    admin = admin_client(stripe_app)
    response = submit(
        admin,
        "/staff/tiers/new",
        name="Champion",
        slug="champion",
        description="Our thanks, in print.",
        currency="EUR",
        monthly_amount="25",
        yearly_amount="250",
        is_active="y",
    )
    assert response.status_code == 302
    champion = tier_named("champion")
    product = fake_stripe.get(champion.stripe_product_id or "")
    assert (product["name"], product["description"], product["metadata"]["supporters_tier"]) == (
        "Champion",
        "Our thanks, in print.",
        "champion",
    )
    monthly = fake_stripe.get(champion.stripe_monthly_price_id or "")
    yearly = fake_stripe.get(champion.stripe_yearly_price_id or "")
    assert (monthly["unit_amount"], monthly["recurring"]["interval"]) == (2500, "month")
    assert (yearly["unit_amount"], yearly["recurring"]["interval"]) == (25000, "year")
    # Saving it unchanged asks nothing of Stripe.
    before = len(fake_stripe.requests)
    url = f"/staff/tiers/{champion.id}"
    assert submit(admin, url, **tier_form(champion)).status_code == 302
    assert len(fake_stripe.requests) == before


def test_staff_move_patrons_on_an_older_price_from_their_next_renewal(
    stripe_app: Flask,
    fake_stripe: FakeStripe,
    webhooks: Webhooks,
    synced_tiers: None,
    patron: tuple[Member, FlaskClient],
) -> None:
    member, client = patron
    subscription_id = subscribed(fake_stripe, webhooks, client, "reader")
    # The patron has asked to stop at the end of the period: moving them must not undo it.
    submit(client, "/account/support", action="/account/support/cancel", reason="Moving away")
    old_monthly = tier_named("reader").stripe_monthly_price_id
    db.session.execute(sa.update(Tier).where(Tier.slug == "reader").values(monthly_amount=600))
    db.session.commit()
    runner = stripe_app.test_cli_runner()
    synced = runner.invoke(args=["billing", "sync-stripe"])
    assert synced.exit_code == 0, synced.output
    new_monthly = tier_named("reader").stripe_monthly_price_id
    assert fake_stripe.get(old_monthly or "")["active"] is False

    dry = runner.invoke(args=["billing", "move-to-current-prices", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (
        f"would move {subscription_id} (member {member.id}, reader): 5.00 EUR -> 6.00 EUR a month"
        in dry.output
    )
    assert "1 subscription(s) would move." in dry.output
    assert item_price(fake_stripe, subscription_id) == old_monthly

    moved = runner.invoke(args=["billing", "move-to-current-prices", "--tier", "reader"])
    assert moved.exit_code == 0, moved.output
    assert "1 subscription(s) moved." in moved.output
    update = posts(fake_stripe, f"/v1/subscriptions/{subscription_id}")[-1]
    item_id = fake_stripe.get(subscription_id)["items"]["data"][0]["id"]
    assert update.params == {
        "items": [{"id": item_id, "price": new_monthly}],
        "proration_behavior": "none",
    }
    stripe_subscription: dict[str, Any] = fake_stripe.get(subscription_id)
    assert item_price(fake_stripe, subscription_id) == new_monthly
    assert stripe_subscription["cancel_at_period_end"] is True
    db.session.expire_all()
    subscription = db.session.scalars(sa.select(Subscription)).one()
    assert (subscription.amount, subscription.cancel_at_period_end) == (600, True)

    again = runner.invoke(args=["billing", "move-to-current-prices"])
    assert "0 subscription(s) moved." in again.output


def test_sync_stripe_asks_for_ten_lookup_keys_at_a_time(
    stripe_app: Flask, fake_stripe: FakeStripe
) -> None:
    for n in range(6):  # twelve prices
        make_tier(f"tier-{n}", monthly=500 + n, yearly=5000 + n)
    db.session.commit()
    runner = stripe_app.test_cli_runner()
    assert runner.invoke(args=["billing", "sync-stripe"]).exit_code == 0
    again = runner.invoke(args=["billing", "sync-stripe"])
    assert again.exit_code == 0, again.output
    assert "12 price(s) already up to date." in again.output
