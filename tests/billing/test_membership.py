"""Membership follows Stripe's subscription status through one function, with a grace period."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask

from supporters.billing.membership import MembershipStatus, status_of
from supporters.billing.models import Interval, Subscription, SubscriptionStatus
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Role
from tests.factories import make_member, signed_in_client
from tests.helpers import text

DAY = dt.timedelta(days=1)


def _subscription(status: SubscriptionStatus, period_start_days: float = -10) -> Subscription:
    """A monthly subscription whose current period started that many days from now."""
    start = utcnow() + period_start_days * DAY
    return Subscription(
        status=status,
        interval=Interval.MONTH,
        amount=500,
        currency="EUR",
        current_period_start=start,
        current_period_end=Interval.MONTH.after(start),
        updated_at=utcnow(),
    )


@pytest.mark.parametrize(
    ("status", "period_start_days", "expected"),
    [
        (SubscriptionStatus.ACTIVE, -10, MembershipStatus.ACTIVE),
        (SubscriptionStatus.TRIALING, -10, MembershipStatus.ACTIVE),
        (SubscriptionStatus.INCOMPLETE, -1, MembershipStatus.PENDING),
        # The renewal at the period's start failed; the grace period (7 days) counts from it,
        # although Stripe has already moved the period end a month ahead.
        (SubscriptionStatus.PAST_DUE, -1, MembershipStatus.GRACE),
        (SubscriptionStatus.PAST_DUE, -6.9, MembershipStatus.GRACE),
        # Past the grace period the subscription is still live: on hold, not ended.
        (SubscriptionStatus.PAST_DUE, -7.1, MembershipStatus.ON_HOLD),
        (SubscriptionStatus.UNPAID, -1, MembershipStatus.ON_HOLD),
        (SubscriptionStatus.PAUSED, -10, MembershipStatus.ON_HOLD),
        (SubscriptionStatus.CANCELED, -1, MembershipStatus.LAPSED),
        (SubscriptionStatus.INCOMPLETE_EXPIRED, -1, MembershipStatus.LAPSED),
    ],
)
def test_status_maps_to_membership(
    app: Flask, status: SubscriptionStatus, period_start_days: float, expected: MembershipStatus
) -> None:
    assert status_of(_subscription(status, period_start_days)) is expected
    assert status_of(None) is MembershipStatus.NONE


def test_grace_period_is_configurable(make_app) -> None:  # type: ignore[no-untyped-def]
    with make_app(GRACE_PERIOD_DAYS=0).app_context():
        assert (
            status_of(_subscription(SubscriptionStatus.PAST_DUE, -0.01)) is MembershipStatus.ON_HOLD
        )


def test_failed_renewal_shows_a_banner_and_the_staff_queue(app: Flask) -> None:
    member = make_member("late@example.org", display_name="Late Payer")
    staff = make_member("staff@example.org", role=Role.STAFF)
    subscription = _subscription(SubscriptionStatus.PAST_DUE, -2)
    subscription.member_id = member.id
    subscription.stripe_subscription_id = "sub_late"
    db.session.add(subscription)
    db.session.commit()

    page = text(signed_in_client(app, member).get("/polls/"))
    assert "Your last payment did not go through." in page
    assert "Update your card" in page
    queue = signed_in_client(app, staff).get("/staff/failed-payments")
    assert queue.status_code == 200
    assert "Late Payer" in text(queue) and "Grace period until" in text(queue)
    assert signed_in_client(app, member).get("/staff/failed-payments").status_code == 403
