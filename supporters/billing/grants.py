"""Grants: give a member a tier's benefits without a subscription, end it, and read it.

Whether a grant entitles is read from the clock (:meth:`Grant.is_entitling_at`), so an expired
grant needs no job to stop entitling. :mod:`supporters.billing.membership` weighs grants with
subscriptions, in one place.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters import audit
from supporters.billing.grant_models import GRANT_REASON_MAX_LENGTH, Grant, GrantSource
from supporters.billing.models import Subscription, SubscriptionStatus, Tier
from supporters.db import insert_many, utcnow
from supporters.extensions import db
from supporters.members.models import Member

# Subscription statuses that count as a paying patron (as ``membership.COUNTED_STATUSES``, which
# imports this module).
_COUNTED = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)


class GrantError(Exception):
    """A grant that cannot be made or ended as asked; ``message`` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def entitling(at: sa.ColumnElement[dt.datetime] | dt.datetime) -> sa.ColumnElement[bool]:
    """SQL: the grant entitles its member at ``at`` (a moment, or a column)."""
    return sa.and_(Grant.starts_at <= at, sa.or_(Grant.ends_at.is_(None), Grant.ends_at > at))


@functools.cache
def _entitling_grant_query() -> sa.Select[Grant]:
    at = sa.bindparam("at", type_=Grant.__table__.c.starts_at.type)
    return (
        sa.select(Grant)
        .where(Grant.member_id == sa.bindparam("member_id"), entitling(at))
        # The one that lasts longest stands for them all (no end lasts longest).
        .order_by(Grant.ends_at.is_(None).desc(), Grant.ends_at.desc(), Grant.id.desc())
        .limit(1)
    )


def entitling_grant(member_id: int, at: dt.datetime | None = None) -> Grant | None:
    """The grant that entitles the member at ``at`` (now), if any: the longest-lasting one."""
    params = {"member_id": member_id, "at": at or utcnow()}
    return db.session.scalars(_entitling_grant_query(), params).first()


def grants_of(member_id: int) -> list[Grant]:
    """The member's grants, newest first."""
    return list(
        db.session.scalars(
            sa.select(Grant)
            .where(Grant.member_id == member_id)
            .order_by(Grant.starts_at.desc(), Grant.id.desc())
        )
    )


def grant_membership(
    member: Member,
    tier: Tier,
    *,
    ends_at: dt.datetime | None,
    reason: str,
    actor: audit.Actor,
    source: GrantSource = GrantSource.COMPLIMENTARY,
    starts_at: dt.datetime | None = None,
) -> Grant:
    """Give ``member`` the benefits of ``tier`` until ``ends_at`` (None: until ended); audited.

    :raises GrantError: an end not after the start, or a reason too long.
    """
    starts_at = starts_at or utcnow()
    if ends_at is not None and ends_at <= starts_at:
        raise GrantError(_("The end date must be after the start."))
    reason = reason.strip()
    if len(reason) > GRANT_REASON_MAX_LENGTH:
        raise GrantError(_("The reason is too long."))
    grant = Grant(
        member_id=member.id,
        tier_id=tier.id,
        source=source,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_by_id=actor.member_id,
    )
    db.session.add(grant)
    db.session.flush()
    audit.record(
        "grant.created",
        actor,
        grant,
        member_id=member.id,
        tier=tier.slug,
        source=source.value,
        ends_at=ends_at.isoformat() if ends_at else None,
        reason=reason,
    )
    return grant


def end_grant(grant: Grant, actor: audit.Actor | None, at: dt.datetime | None = None) -> bool:
    """End a grant now (its history stays); False when it had already ended.

    Audited for ``actor``; with None, the caller audits a whole batch (an import) itself.
    """
    at = at or utcnow()
    if grant.ends_at is not None and grant.ends_at <= at:
        return False
    grant.ends_at = max(at, grant.starts_at)
    db.session.flush()
    if actor is not None:
        audit.record("grant.ended", actor, grant, member_id=grant.member_id)
    return True


class CarriedGrant(NamedTuple):
    """A period paid elsewhere, to carry over as a grant (see :func:`carry_grants`)."""

    member_id: int
    tier_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    source: GrantSource
    reason: str


def carry_grants(carried: Sequence[CarriedGrant]) -> Sequence[int]:
    """Make grants in bulk (an import's new patrons); their ids, in the order given.

    Not audited one by one: the import that calls it is audited as a whole.
    """
    now = utcnow()
    return insert_many(
        Grant,
        [
            {
                "member_id": c.member_id,
                "tier_id": c.tier_id,
                "source": c.source,
                "starts_at": min(c.starts_at, c.ends_at),
                "ends_at": c.ends_at,
                "reason": c.reason[:GRANT_REASON_MAX_LENGTH],
                "created_by_id": None,
                "created_at": now,
                "updated_at": now,
            }
            for c in carried
        ],
        returning_ids=True,
    )


def carry_grant(
    grant: Grant | None,
    *,
    member_id: int,
    tier_id: int,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    source: GrantSource,
    reason: str,
) -> Grant:
    """Make or update the grant that carries over a period paid elsewhere (an import).

    Not audited one by one: the import that calls it is audited as a whole. The start of an
    existing grant stays; its tier and end follow what the import says now.
    """
    if grant is None:
        grant = Grant(
            member_id=member_id,
            tier_id=tier_id,
            source=source,
            starts_at=min(starts_at, ends_at),
            ends_at=ends_at,
            reason=reason[:GRANT_REASON_MAX_LENGTH],
        )
        db.session.add(grant)
        return grant
    if grant.tier_id != tier_id:
        grant.tier_id = tier_id
    if grant.ends_at != ends_at:
        grant.ends_at = max(ends_at, grant.starts_at)
    return grant


def granted_patrons(at: dt.datetime) -> dict[GrantSource, int]:
    """Members entitled at ``at`` by a grant and by no subscription live then, by source.

    What the staff's patron counts add to the subscriptions' ledger: decided from the clock at
    read time, so an expired grant leaves the count without a job. Grants carry no money and
    add nothing to recurring revenue. A member holding grants of both sources counts once, as
    their longest-lasting grant's source.
    """
    subscription_live_then = (
        sa.select(Subscription.id)
        .where(
            Subscription.member_id == Grant.member_id,
            sa.func.coalesce(Subscription.started_at, Subscription.created_at) <= at,
            sa.or_(
                Subscription.ended_at > at,
                sa.and_(Subscription.ended_at.is_(None), Subscription.status.in_(_COUNTED)),
            ),
        )
        .exists()
    )
    ranked = (
        sa.select(
            Grant.source,
            sa.func.row_number()
            .over(
                partition_by=Grant.member_id,
                order_by=(Grant.ends_at.is_(None).desc(), Grant.ends_at.desc(), Grant.id.desc()),
            )
            .label("rank"),
        )
        .where(entitling(at), ~subscription_live_then)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(ranked.c.source, sa.func.count())
        .where(ranked.c.rank == 1)
        .group_by(ranked.c.source)
    )
    return {GrantSource(source): int(count) for source, count in rows}


def entitling_grants(member_ids: list[int], at: dt.datetime | None = None) -> dict[int, Grant]:
    """For a page of members: the grant entitling each at ``at`` (now), by member id."""
    if not member_ids:
        return {}
    found: dict[int, Grant] = {}
    query = (
        sa.select(Grant)
        .where(Grant.member_id.in_(member_ids), entitling(at or utcnow()))
        .order_by(Grant.ends_at.is_(None), Grant.ends_at, Grant.id)
    )
    for grant in db.session.scalars(query):
        found[grant.member_id] = grant  # the longest-lasting comes last, and stays
    return found
