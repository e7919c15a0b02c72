"""A tier's new price is made in Stripe as an admin saves it; patrons keep the price they pay.

The real SDK and gateway talk to the fake Stripe; webhooks arrive signed, as in production.
"""

from __future__ import annotations

from flask import Flask

from supporters.extensions import db
from tests.billing.fake_stripe import FakeStripe
from tests.factories import make_tier


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
