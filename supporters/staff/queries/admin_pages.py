"""What the admin pages list: tiers, funding goals, staff accounts, and the audit log."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa

from supporters.audit import AuditEntry
from supporters.billing.models import FundingGoal, Tier
from supporters.extensions import db
from supporters.members.models import Member, Role

AUDIT_PAGE = 50


def tiers_in_order() -> Sequence[Tier]:
    """Every tier, active or not, in its order on the support page."""
    return db.session.scalars(sa.select(Tier).order_by(Tier.position, Tier.id)).all()


def goals_in_order() -> Sequence[FundingGoal]:
    """Every funding goal, active or not, in its order on the support page."""
    return db.session.scalars(sa.select(FundingGoal).order_by(FundingGoal.position)).all()


def staff_accounts() -> Sequence[Member]:
    """Staff and admin accounts, by role then address."""
    return db.session.scalars(
        sa.select(Member)
        .where(Member.role.in_((Role.STAFF, Role.ADMIN)))
        .order_by(Member.role, Member.email)
    ).all()


@dataclasses.dataclass(frozen=True)
class AuditPage:
    """Audit log entries with the member who acted (None: the system or a deleted account)."""

    rows: Sequence[sa.Row[AuditEntry, Member]]
    next_before: int | None  # where the older entries start, when there are any


def audit_page(action: str = "", before: int = 0, size: int = AUDIT_PAGE) -> AuditPage:
    """A page of the audit log, newest first: entries whose action starts with ``action``,
    older than the entry ``before`` (0: from the newest)."""
    statement = sa.select(AuditEntry, Member).outerjoin(Member, Member.id == AuditEntry.actor_id)
    if action:
        statement = statement.where(AuditEntry.action.startswith(action, autoescape=True))
    if before:
        statement = statement.where(AuditEntry.id < before)
    rows = db.session.execute(statement.order_by(AuditEntry.id.desc()).limit(size + 1)).all()
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(rows, rows[-1][0].id if more and rows else None)
