"""Complimentary memberships: an admin grants one from the member's page, and ends it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Flask

from supporters.audit import SYSTEM, AuditEntry
from supporters.billing import grants
from supporters.billing.grant_models import Grant, GrantSource
from supporters.billing.membership import MembershipStatus, membership_of
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Role
from supporters.staff.queries import headline
from supporters.voting.eligibility import check_eligibility
from supporters.voting.models import Weighting
from tests.factories import make_member, signed_in_client
from tests.helpers import submit, text
from tests.voting.factories import make_poll, make_subscription, make_tier


def test_an_admin_grants_a_complimentary_membership_then_ends_it(app: Flask) -> None:
    admin = make_member(role=Role.ADMIN)
    reader = make_member(display_name="Rosa")
    tier = make_tier("Friend", slug="friend")
    poll = make_poll(weighting=Weighting.TIER, tier_rules=[(tier, True, 3)])
    client = signed_in_client(app, admin)
    page = f"/staff/members/{reader.id}"
    last_day = (utcnow() + dt.timedelta(days=30)).date()

    response = submit(
        client,
        page,
        f"{page}/grants",
        tier="friend",
        ends_on=last_day.isoformat(),
        reason="Community reporter",
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert membership_of(reader.id) is MembershipStatus.GRANTED
    grant = db.session.scalars(sa.select(Grant)).one()
    assert grant.ends_at == dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), dt.UTC)
    # They vote as a patron of the granted tier, with its weight.
    assert check_eligibility(poll, reader, utcnow()).weight == 3 * 1_000_000
    shown = text(client.get(page))
    assert "complimentary" in shown and "Community reporter" in shown
    assert "complimentary" in text(client.get("/staff/members"))

    response = submit(client, page, f"/staff/grants/{grant.id}/end")
    assert response.status_code == 302
    db.session.expire_all()
    assert membership_of(reader.id) is MembershipStatus.NONE
    assert not check_eligibility(poll, reader, utcnow()).may_vote
    actions = db.session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["grant.created", "grant.ended"]


def test_a_grant_ending_in_the_past_is_refused_and_nothing_is_written(app: Flask) -> None:
    admin = make_member(role=Role.ADMIN)
    reader = make_member()
    make_tier("Friend", slug="friend")
    client = signed_in_client(app, admin)
    page = f"/staff/members/{reader.id}"
    response = submit(
        client, page, f"{page}/grants", tier="friend", ends_on="2020-01-01", reason="Oops"
    )
    assert response.status_code == 400
    assert "The end date must be after the start." in text(response)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Grant)) == 0


def test_staff_who_are_not_admins_cannot_grant(app: Flask) -> None:
    staff = make_member(role=Role.STAFF)
    reader = make_member()
    make_tier("Friend", slug="friend")
    client = signed_in_client(app, staff)
    page = f"/staff/members/{reader.id}"
    response = submit(client, page, f"{page}/grants", tier="friend", reason="Because")
    assert response.status_code == 403


def test_a_granted_member_counts_as_a_patron_without_revenue_until_the_grant_ends(
    app: Flask,
) -> None:
    tier = make_tier("Friend", slug="friend")
    paying = make_member()
    make_subscription(paying, tier)
    granted, both = make_member(), make_member()
    make_subscription(both, tier)
    now = utcnow()
    for member in (granted, both):
        grants.grant_membership(
            member,
            tier,
            ends_at=now + dt.timedelta(days=10),
            reason="Patreon",
            actor=SYSTEM,
            source=GrantSource.PATREON,
            starts_at=now - dt.timedelta(days=40),
        )
    db.session.commit()

    figures = headline.now_figures(now)
    assert figures.patrons == 3  # the member with a subscription and a grant counts once
    assert figures.granted == {GrantSource.PATREON: 1}
    assert figures.mrr == {"EUR": 1000}  # the two subscriptions only
    later = headline.now_figures(now + dt.timedelta(days=11))
    assert (later.patrons, later.granted) == (2, {})
