"""How the move from Patreon is going: read-only figures for the staff's progress page.

Every imported patron falls in exactly one of four groups, decided at read time:

* **moved over**: their current subscription here counts as a paying patron;
* **still entitled via Patreon**: not moved, and the grant that carries their Patreon period
  still runs;
* **lapsed**: not moved, and that grant has ended (their paid period on Patreon is over);
* **history only**: declined and former patrons, never entitled here, who have not moved.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from supporters.billing.grant_models import Grant
from supporters.billing.grants import entitling
from supporters.billing.membership import COUNTED_STATUSES, current_subscription_id
from supporters.billing.models import Interval, Offer, Subscription, Tier
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member
from supporters.money import to_decimal
from supporters.patreon.models import ImportedPatron


class Group(enum.StrEnum):
    MOVED = "moved"
    ENTITLED = "entitled"
    LAPSED = "lapsed"
    HISTORY = "history"


@dataclasses.dataclass(frozen=True)
class MovedTier:
    name: str  # "" for a custom amount
    currency: str
    patrons: int
    mrr: int


@dataclasses.dataclass(frozen=True)
class Progress:
    imported: int
    invited: int
    opened: int
    groups: dict[Group, int]
    moved_by_tier: list[MovedTier]

    @property
    def mrr(self) -> dict[str, int]:
        """Recurring revenue per month of those who moved, per currency."""
        totals: dict[str, int] = {}
        for row in self.moved_by_tier:
            totals[row.currency] = totals.get(row.currency, 0) + row.mrr
        return totals


def _current() -> Any:
    """The imported patron's current subscription here, if it counts as paying."""
    return sa.and_(
        Subscription.member_id == ImportedPatron.member_id,
        # Correlated on the subscription's own row: it works inside EXISTS and in a join.
        Subscription.id == current_subscription_id(Subscription.member_id),
        Subscription.status.in_(COUNTED_STATUSES),
    )


def has_moved() -> sa.ColumnElement[bool]:
    """SQL: the imported patron moved over: their invitation offer was taken up, or they have a
    subscription here that counts as paying."""
    return sa.or_(
        sa.exists(
            sa.select(Offer.id).where(
                Offer.id == ImportedPatron.offer_id, Offer.used_at.is_not(None)
            )
        ),
        sa.exists(sa.select(Subscription.id).where(_current())),
    )


def _group(now: dt.datetime) -> sa.ColumnElement[str]:
    moved = sa.exists(sa.select(Subscription.id).where(_current()))
    return sa.case(
        (moved, Group.MOVED.value),
        (sa.and_(ImportedPatron.grant_id.is_not(None), entitling(now)), Group.ENTITLED.value),
        (ImportedPatron.grant_id.is_not(None), Group.LAPSED.value),
        else_=Group.HISTORY.value,
    )


def _with_grant(query: sa.Select[Any]) -> sa.Select[Any]:
    return query.outerjoin(Grant, Grant.id == ImportedPatron.grant_id)


def progress(now: dt.datetime | None = None) -> Progress:
    """The figures of the progress page, now."""
    now = now or utcnow()
    imported, invited, opened = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(ImportedPatron.invited_at),
            sa.func.count(ImportedPatron.opened_at),
        ).select_from(ImportedPatron)
    ).one()
    grouped = _with_grant(
        sa.select(_group(now).label("grp")).select_from(ImportedPatron)
    ).subquery()
    counts: dict[Group, int] = {
        Group(row.grp): int(row.n)
        for row in db.session.execute(
            sa.select(grouped.c.grp, sa.func.count().label("n")).group_by(grouped.c.grp)
        )
    }
    monthly = sa.case(
        (Subscription.interval == Interval.MONTH, Subscription.amount),
        else_=Subscription.amount // 12,
    )
    moved_by_tier = [
        MovedTier(name or "", currency, int(patrons), int(mrr or 0))
        for name, currency, patrons, mrr in db.session.execute(
            sa.select(Tier.name, Subscription.currency, sa.func.count(), sa.func.sum(monthly))
            .select_from(ImportedPatron)
            .join(Subscription, _current())
            .outerjoin(Tier, Tier.id == Subscription.tier_id)
            .group_by(Tier.name, Subscription.currency)
            .order_by(sa.func.count().desc(), Tier.name)
        )
    ]
    return Progress(
        imported=int(imported),
        invited=int(invited),
        opened=int(opened),
        groups={g: counts.get(g, 0) for g in Group},
        moved_by_tier=moved_by_tier,
    )


NOT_MOVED_HEADER = (
    "email",
    "name",
    "patreon_status",
    "patreon_tier",
    "pledge_amount",
    "currency",
    "charge_frequency",
    "tier_here",
    "entitled_until",
    "next_charge_at",
    "lifetime_amount",
    "invited_at",
    "opened_at",
)


def not_moved_rows(now: dt.datetime | None = None) -> Iterator[tuple[Any, ...]]:
    """One row per imported patron who has no paying subscription here yet, for a CSV."""
    now = now or utcnow()
    query = _with_grant(
        sa.select(
            Member.email,
            Member.display_name,
            ImportedPatron.status,
            ImportedPatron.patreon_tier,
            ImportedPatron.pledge_amount,
            ImportedPatron.currency,
            ImportedPatron.charge_frequency,
            Tier.name,
            sa.case((entitling(now), Grant.ends_at), else_=None),
            ImportedPatron.next_charge_at,
            ImportedPatron.lifetime_amount,
            ImportedPatron.invited_at,
            ImportedPatron.opened_at,
        )
        .select_from(ImportedPatron)
        .join(Member, Member.id == ImportedPatron.member_id)
        .outerjoin(Tier, Tier.id == ImportedPatron.tier_id)
    ).where(~sa.exists(sa.select(Subscription.id).where(_current())))
    for row in db.session.execute(query.order_by(Member.email).execution_options(yield_per=1000)):
        (email, name, status, ptier, pledge, currency, frequency, tier, until, nxt, life, *rest) = (
            row
        )
        yield (
            email,
            name,
            status.value,
            ptier,
            to_decimal(pledge, currency),
            currency,
            frequency.value,
            tier or "",
            until,
            nxt,
            to_decimal(life, currency),
            *rest,
        )
