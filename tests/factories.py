"""Factory functions for test data: each makes exactly what a test names, flushed, uncommitted."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member, Role

_counter = iter(range(1, 10**9))


def make_member(
    email: str | None = None, *, role: Role = Role.MEMBER, verified: bool = True, **fields: Any
) -> Member:
    n = next(_counter)
    member = Member(
        email=(email or f"reader{n}@example.org").lower(),
        display_name=fields.pop("display_name", f"Reader {n}"),
        role=role,
        email_verified_at=utcnow() if verified else None,
        **fields,
    )
    db.session.add(member)
    db.session.flush()
    return member


def make_tier(
    slug: str = "supporter", *, monthly: int = 1000, yearly: int = 10000, **fields: Any
) -> Any:
    from supporters.billing.models import Tier

    tier = Tier(
        slug=slug,
        name=fields.pop("name", slug.title()),
        monthly_amount=monthly,
        yearly_amount=yearly,
        currency=fields.pop("currency", "EUR"),
        **fields,
    )
    db.session.add(tier)
    db.session.flush()
    return tier


def signed_in_client(app: Flask, member: Member) -> FlaskClient:
    """A test client with a live session for the member, as after a real sign-in."""
    from supporters.members import services

    row = services.start_session(member, user_agent="tests")
    db.session.commit()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = row.id
        session["_fresh"] = True
        session.permanent = True
    return client
