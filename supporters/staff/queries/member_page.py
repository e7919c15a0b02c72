"""What staff see of one member: subscriptions, the ledger's history, votes, proposals, changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from supporters.audit import AuditEntry
from supporters.billing.models import Subscription, Tier
from supporters.extensions import db
from supporters.staff.models import Movement, MovementKind
from supporters.voting.models import Poll, Topic, Vote


def subscriptions_of(member_id: int) -> Sequence[Subscription]:
    """Every subscription of the member, with its tier, the latest first."""
    return db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.member_id == member_id)
        .options(sa.orm.joinedload(Subscription.tier))
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    ).all()


def movements_of(member_id: int) -> Sequence[Movement]:
    """The member's history as the report ledger has it (joined, gave more, left...), oldest first."""
    return db.session.scalars(
        sa.select(Movement)
        .where(Movement.member_id == member_id, Movement.kind != MovementKind.OBSERVED)
        .order_by(Movement.occurred_at, Movement.id)
    ).all()


def votes_of(member_id: int, limit: int = 100) -> Sequence[sa.Row[dt.datetime, int, str]]:
    """The member's latest votes: when, and the poll's id and question."""
    return db.session.execute(
        sa.select(Vote.created_at, Poll.id, Poll.question)
        .join(Poll, Poll.id == Vote.poll_id)
        .where(Vote.member_id == member_id)
        .order_by(Vote.created_at.desc())
        .limit(limit)
    ).all()


def proposals_of(member_id: int, limit: int = 100) -> Sequence[Topic]:
    """The topics the member proposed, the latest first."""
    return db.session.scalars(
        sa.select(Topic)
        .where(Topic.proposed_by_id == member_id)
        .order_by(Topic.created_at.desc())
        .limit(limit)
    ).all()


def changes_to(member_id: int, limit: int = 50) -> list[AuditEntry]:
    """The audit log's entries about the member's account, the latest first."""
    return list(
        db.session.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.target_type == "member", AuditEntry.target_id == str(member_id))
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        )
    )


def tier_names() -> dict[int, str]:
    """Every tier's name by id (the ledger keeps tiers by id)."""
    return dict(db.session.execute(sa.select(Tier.id, Tier.name)).all())
