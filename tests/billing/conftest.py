"""Billing fixtures: the app wired to a fake Stripe on 127.0.0.1, and webhook delivery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from supporters.extensions import db
from supporters.members.models import Member
from tests.billing.fake_stripe import FakeStripe
from tests.conftest import run_jobs
from tests.factories import make_member, make_tier, signed_in_client

WEBHOOK_SECRET = "whsec_test_secret"


@pytest.fixture(scope="session")
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe(seed=7) as fake:
        yield fake


@pytest.fixture
def stripe_app(make_app: Any, fake_stripe: FakeStripe) -> Iterator[Flask]:
    """The app with Stripe keys, talking to the fake; inside an app context."""
    fake_stripe.reset()
    app: Flask = make_app(
        STRIPE_SECRET_KEY="sk_test_supporters",
        STRIPE_PUBLISHABLE_KEY="pk_test_supporters",
        STRIPE_WEBHOOK_SECRET=[WEBHOOK_SECRET],
        STRIPE_API_BASE=fake_stripe.api_base,
    )
    with app.app_context():
        yield app
    assert fake_stripe.errors == [], "the fake Stripe failed unexpectedly"


class Webhooks:
    """Delivers the fake's events to the app, signed as Stripe signs them, then runs the jobs
    they queued as a worker would (``drain=False`` leaves them queued)."""

    def __init__(self, app: Flask, fake: FakeStripe) -> None:
        self.app = app
        self.client = app.test_client()
        self.fake = fake

    def deliver(
        self, *events: dict[str, Any], secret: str = WEBHOOK_SECRET, drain: bool = True
    ) -> list[int]:
        statuses = []
        for event in events:
            body, headers = self.fake.webhook_request(event, secret)
            statuses.append(
                self.client.post("/stripe/webhook", data=body, headers=headers).status_code
            )
        if drain:
            run_jobs(self.app)
        return statuses


@pytest.fixture
def webhooks(stripe_app: Flask, fake_stripe: FakeStripe) -> Webhooks:
    return Webhooks(stripe_app, fake_stripe)


@pytest.fixture
def synced_tiers(stripe_app: Flask) -> None:
    """Two tiers with their Stripe products and prices made by ``billing sync-stripe``."""
    make_tier("reader", name="Reader", monthly=500, yearly=5000, position=1)
    make_tier("supporter", name="Supporter", monthly=1000, yearly=10000, position=2)
    db.session.commit()
    result = stripe_app.test_cli_runner().invoke(args=["billing", "sync-stripe"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def patron(stripe_app: Flask) -> tuple[Member, FlaskClient]:
    member = make_member("patron@example.org", display_name="Pat Ron")
    db.session.commit()
    return member, signed_in_client(stripe_app, member)
