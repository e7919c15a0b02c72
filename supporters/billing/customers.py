"""Each member's one payment-provider customer, and the member a customer belongs to.

A customer is this installation's only if it made it for a member (:func:`ensure_customer`):
never from metadata, which any integration on the account can write. Taking a member's
customer row lock puts their checkouts and subscription changes one after another.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from supporters.billing.backend import backend
from supporters.billing.models import Customer
from supporters.billing.provider import Backend
from supporters.db import insert_ignoring_conflicts, utcnow
from supporters.extensions import db
from supporters.members.models import Member


def ensure_customer(member: Member, provider: Backend | None = None) -> str:
    """The member's one payment-provider customer, created the first time it is needed.

    A retry or a concurrent request reuses the same customer: the provider call is idempotent
    per member and the database keeps one row per member.
    """
    existing = db.session.scalar(
        sa.select(Customer.stripe_customer_id).where(Customer.member_id == member.id)
    )
    if existing:
        return existing
    provider = provider or backend()
    customer_id = provider.create_customer(
        email=member.email, name=member.display_name, member_id=member.id
    )
    insert_ignoring_conflicts(
        Customer,
        {"member_id": member.id, "stripe_customer_id": customer_id, "created_at": utcnow()},
    )
    stored = db.session.scalar(
        sa.select(Customer.stripe_customer_id).where(Customer.member_id == member.id)
    )
    assert stored is not None
    return stored


def lock_customer(member_id: int) -> None:
    """Take the lock of the member's customer row (PostgreSQL; SQLite runs one writer at a time).

    Starting a checkout, completing one and syncing a subscription take it first, so one
    member's run one at a time, each reading what the one before it committed.
    """
    db.session.execute(
        sa.select(Customer.id).where(Customer.member_id == member_id).with_for_update()
    )


@functools.cache
def _member_lock() -> sa.Select[int]:
    """The member whose customer ``customer_id`` is, their customer row locked; built once."""
    return (
        sa.select(Customer.member_id)
        .where(Customer.stripe_customer_id == sa.bindparam("customer_id", type_=sa.String))
        .with_for_update()
    )


def lock_member_of(customer_id: str) -> int | None:
    """The member whose customer this is, their customer row locked (see lock_customer)."""
    return db.session.scalar(_member_lock(), {"customer_id": customer_id})


def customer_member(customer_id: str | sa.BindParameter[str]) -> sa.ScalarSelect[int]:
    """The member a customer is linked to, as a subquery to read along with another row."""
    return (
        sa.select(Customer.member_id)
        .where(Customer.stripe_customer_id == customer_id)
        .scalar_subquery()
    )


def member_for_customer(customer_id: str) -> int | None:
    """The member whose customer this is: one this installation made for them (ensure_customer).

    Never from metadata: any integration on the account can write ``member_id`` there.
    """
    return db.session.scalar(sa.select(customer_member(customer_id)))
