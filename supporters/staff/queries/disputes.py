"""Disputes for staff: those to answer first, those decided lately, and a member's own."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from supporters.billing.models import (
    OPEN_DISPUTE_STATUSES,
    RESPONSE_DISPUTE_STATUSES,
    Dispute,
    Payment,
)
from supporters.extensions import db

_DISPUTE_ROWS = (sa.orm.joinedload(Dispute.payment).joinedload(Payment.member),)


def open_disputes(limit: int = 200) -> list[Dispute]:
    """Disputes not decided yet: those waiting for evidence first, the soonest deadline first."""
    waiting = sa.case((Dispute.status.in_(RESPONSE_DISPUTE_STATUSES), 0), else_=1)
    return list(
        db.session.scalars(
            sa.select(Dispute)
            .where(Dispute.status.in_(OPEN_DISPUTE_STATUSES))
            .order_by(waiting, Dispute.evidence_due_at.asc().nulls_last(), Dispute.id)
            .limit(limit)
            .options(*_DISPUTE_ROWS)
        )
    )


def closed_disputes(limit: int = 50) -> list[Dispute]:
    """The disputes decided last, the latest first."""
    return list(
        db.session.scalars(
            sa.select(Dispute)
            .where(Dispute.status.not_in(OPEN_DISPUTE_STATUSES))
            .order_by(Dispute.closed_at.desc().nulls_last(), Dispute.id.desc())
            .limit(limit)
            .options(*_DISPUTE_ROWS)
        )
    )


def disputes_of(member_id: int) -> list[Dispute]:
    """A member's disputes, the latest opened first."""
    return list(
        db.session.scalars(
            sa.select(Dispute)
            .join(Payment, Payment.id == Dispute.payment_id)
            .where(Payment.member_id == member_id)
            .order_by(Dispute.opened_at.desc(), Dispute.id.desc())
            .options(sa.orm.contains_eager(Dispute.payment))
        )
    )


@dataclasses.dataclass(frozen=True)
class DisputesDue:
    """Open disputes, and the soonest deadline of those waiting for evidence."""

    count: int
    soonest_due_at: dt.datetime | None


def disputes_due() -> DisputesDue:
    """How many disputes are open, and when the first answer is due (the overview's figure)."""
    waiting = Dispute.status.in_(RESPONSE_DISPUTE_STATUSES)
    count, soonest = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(Dispute.evidence_due_at).filter(waiting)).where(
            Dispute.status.in_(OPEN_DISPUTE_STATUSES)
        )
    ).one()
    return DisputesDue(int(count), soonest)
