"""Membership status: the one place that turns Stripe's subscription status, and grants made
without a subscription (:mod:`supporters.billing.grants`), into benefits."""

from __future__ import annotations

import datetime as dt
import enum
import functools
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.orm import aliased
from sqlalchemy.orm.util import AliasedClass

from supporters.billing import grants
from supporters.billing.grant_models import Grant
from supporters.billing.models import Subscription, SubscriptionStatus
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.auth import LoadedWithSession
from supporters.members.models import Member

# Statuses in which a subscription counts as a paying patron: in the figures shown to the
# public and to staff, and as the one support a member may have (a second is a duplicate).
COUNTED_STATUSES = (
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PAST_DUE,
)

# Subscriptions that are (or may become) the member's current one: at most one per member.
LIVE_STATUSES = (
    SubscriptionStatus.INCOMPLETE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.PAUSED,
)


class MembershipStatus(enum.StrEnum):
    """What a member's support gives them now."""

    NONE = "none"  # never supported
    PENDING = "pending"  # checkout started, first payment not through yet
    ACTIVE = "active"  # paid up (or trialing)
    GRACE = "grace"  # a renewal failed; benefits continue while Stripe retries the card
    # The grace period is over (or Stripe stopped retrying) but the subscription is still live:
    # benefits are paused until a payment goes through. Not ended, so not "lapsed".
    ON_HOLD = "on_hold"
    LAPSED = "lapsed"  # was a patron, is not any more: no live subscription
    # Entitled by a grant (complimentary, or a paid-up patron imported from Patreon) and by no
    # subscription: benefits without money. A subscription that entitles comes first.
    GRANTED = "granted"

    @property
    def label(self) -> str:
        """The status as staff read it on a member's page."""
        labels: dict[MembershipStatus, str] = {
            MembershipStatus.NONE: _("Never supported"),
            MembershipStatus.PENDING: _("Waiting for the first payment"),
            MembershipStatus.ACTIVE: _("Patron"),
            MembershipStatus.GRACE: _("Patron, renewal failed (grace period)"),
            MembershipStatus.ON_HOLD: _("On hold: renewal failed, Stripe still retrying"),
            MembershipStatus.LAPSED: _("Lapsed"),
            MembershipStatus.GRANTED: _("Patron by a grant"),
        }
        return labels[self]

    @property
    def is_entitled(self) -> bool:
        return self in (MembershipStatus.ACTIVE, MembershipStatus.GRACE, MembershipStatus.GRANTED)


def grace_period() -> dt.timedelta:
    return dt.timedelta(days=current_app.config["GRACE_PERIOD_DAYS"])


def renewal_due_at(subscription: Subscription) -> dt.datetime:
    """When the unpaid renewal of a past-due subscription was due.

    Stripe starts the new period even when its invoice fails, so this is the current period's
    start, not its end.
    """
    if subscription.current_period_start is not None:
        return subscription.current_period_start
    if subscription.current_period_end is not None:
        return subscription.interval.after(subscription.current_period_end, -1)
    return subscription.updated_at


def status_of(
    subscription: Subscription | None, now: dt.datetime | None = None
) -> MembershipStatus:
    """Map one subscription's Stripe status (and the clock, for past_due) to membership.

    Every live subscription maps to a state other than LAPSED: a member whose subscription
    Stripe still holds is never told that it ended, nor invited to start another.
    """
    if subscription is None:
        return MembershipStatus.NONE
    now = now or utcnow()
    status = subscription.status
    if status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        return MembershipStatus.ACTIVE
    if status is SubscriptionStatus.PAST_DUE:
        if now < renewal_due_at(subscription) + grace_period():
            return MembershipStatus.GRACE
        return MembershipStatus.ON_HOLD
    if status in (SubscriptionStatus.UNPAID, SubscriptionStatus.PAUSED):
        return MembershipStatus.ON_HOLD
    if status is SubscriptionStatus.INCOMPLETE:
        return MembershipStatus.PENDING
    return MembershipStatus.LAPSED


def status_at(subscription: Subscription | None, at: dt.datetime) -> MembershipStatus:
    """What one subscription gave its member at ``at``, a past moment or now, read from its row.

    A row keeps its latest status, its start and end and its current period; the past is read
    from those. Before it started it gave nothing and from its end on it gave nothing; in
    between it gave what its status gives, except where the current period's renewal went
    unpaid (past due, unpaid or paused now, or cancelled before the period was over, as Stripe
    does after its last retry): then it was paid up until that renewal, and in grace for the
    grace period after it while Stripe still retried (past due, or since cancelled). What the
    row no longer says is not seen: a late renewal since paid, or a change of tier. At ``at``
    = now this is :func:`status_of`.
    """
    if subscription is None or at < (subscription.started_at or subscription.created_at):
        return MembershipStatus.NONE
    if subscription.ended_at is not None and at >= subscription.ended_at:
        return MembershipStatus.LAPSED
    status = subscription.status
    if status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        return MembershipStatus.ACTIVE
    if status is SubscriptionStatus.INCOMPLETE:
        return MembershipStatus.PENDING
    if status in (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED):
        # Ended after ``at`` (an end that was not recorded says nothing: lapsed, as now).
        if subscription.ended_at is None:
            return MembershipStatus.LAPSED
        if status is SubscriptionStatus.INCOMPLETE_EXPIRED:
            return MembershipStatus.PENDING
        end = subscription.current_period_end
        if end is None or subscription.ended_at >= end:
            return MembershipStatus.ACTIVE  # paid to its end (a cancellation at period end)
        return _after_unpaid_renewal(subscription, at, grace=True)
    # Unpaid and paused ones lapsed when they got there, which may be inside the grace period.
    return _after_unpaid_renewal(subscription, at, grace=status is SubscriptionStatus.PAST_DUE)


def _after_unpaid_renewal(
    subscription: Subscription, at: dt.datetime, *, grace: bool
) -> MembershipStatus:
    """Paid up before the unpaid renewal was due, then in grace (if any), then lapsed."""
    due = renewal_due_at(subscription)
    if at < due:
        return MembershipStatus.ACTIVE
    if grace and at < due + grace_period():
        return MembershipStatus.GRACE
    return MembershipStatus.LAPSED


def _current_first(
    subscription: type[Subscription] | AliasedClass[Subscription],
) -> tuple[sa.ColumnElement[Any], ...]:
    """Order a member's subscriptions so that the current one comes first: live, then newest."""
    live_first = sa.case((subscription.status.in_(LIVE_STATUSES), 0), else_=1)
    return (live_first, subscription.created_at.desc(), subscription.id.desc())


@functools.cache
def _current_subscription_query() -> sa.Select[Subscription]:
    """Built once: a built statement skips SQLAlchemy's building on every call."""
    return (
        sa.select(Subscription)
        .where(Subscription.member_id == sa.bindparam("member_id"))
        .order_by(*_current_first(Subscription))
        .limit(1)
    )


def current_subscription(member_id: int) -> Subscription | None:
    """The member's live subscription if they have one, else their most recent one."""
    return db.session.scalars(_current_subscription_query(), {"member_id": member_id}).first()


def current_subscription_id(member_id: sa.ColumnExpressionArgument[int]) -> sa.ScalarSelect[int]:
    """The id of the current subscription of ``member_id`` (a column of an enclosing query).

    It lets a query that selects members bring each one's current subscription along, as the
    sign-in check does once per request.
    """
    other = aliased(Subscription)
    return (
        sa.select(other.id)
        .where(other.member_id == member_id)
        .order_by(*_current_first(other))
        .limit(1)
        .scalar_subquery()
    )


def _with_current_subscription(query: sa.Select[Member]) -> sa.Select[Member, Subscription]:
    """The member's current subscription beside them, outer-joined (None when they have none)."""
    return query.add_columns(Subscription).outerjoin(
        Subscription, Subscription.id == current_subscription_id(Member.id)
    )


#: Registered with members' sign-in by ``create_app``: a signed-in member's current
#: subscription comes with their session, in the same statement, on every request.
SUBSCRIPTION_WITH_SESSION = LoadedWithSession(
    join=_with_current_subscription, load=current_subscription
)


def with_grant(
    status: MembershipStatus, member_id: int, at: dt.datetime | None = None
) -> tuple[MembershipStatus, Grant | None]:
    """A subscription's status, completed by the member's grants: the one rule that weighs them.

    A subscription that entitles comes first (it is money, and says the tier paid for); else a
    grant entitling at ``at`` makes the member GRANTED; else the subscription's status stands.
    """
    if status.is_entitled:
        return status, None
    grant = grants.entitling_grant(member_id, at)
    return (MembershipStatus.GRANTED, grant) if grant is not None else (status, None)


def standing_of(
    member_id: int, now: dt.datetime | None = None
) -> tuple[MembershipStatus, Grant | None]:
    """The member's status and, when a grant is what entitles them, that grant."""
    now = now or utcnow()
    return with_grant(status_of(current_subscription(member_id), now), member_id, now)


def membership_of(member_id: int, now: dt.datetime | None = None) -> MembershipStatus:
    return standing_of(member_id, now)[0]


def is_entitled(member_id: int, now: dt.datetime | None = None) -> bool:
    """May this member use patron benefits (vote, propose topics) right now?"""
    return membership_of(member_id, now).is_entitled
