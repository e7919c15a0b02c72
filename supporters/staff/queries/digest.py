"""The staff's daily digest: what happened in a day that someone should look at."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from supporters.billing.models import Payment, PaymentStatus, Subscription, SubscriptionStatus
from supporters.extensions import db
from supporters.voting.models import Topic, TopicStatus

# Subscriptions that started and were paid for: a checkout left unpaid made no patron.
_UNPAID_STARTS = (SubscriptionStatus.INCOMPLETE, SubscriptionStatus.INCOMPLETE_EXPIRED)


@dataclasses.dataclass(frozen=True)
class Digest:
    since: dt.datetime
    until: dt.datetime
    new_patrons: int
    cancellations: int  # asked for (at the end of the period, or now) or made by Stripe
    failed_payments: int
    proposals_waiting: int  # now, however old

    @property
    def is_quiet(self) -> bool:
        return not (
            self.new_patrons or self.cancellations or self.failed_payments or self.proposals_waiting
        )


def digest(since: dt.datetime, until: dt.datetime) -> Digest:
    """The day's figures, between ``since`` and ``until``, in one statement."""

    def in_day(column: InstrumentedAttribute[dt.datetime | None]) -> sa.ColumnElement[bool]:
        return sa.and_(column >= since, column < until)

    new_patrons = (
        sa.select(sa.func.count(sa.distinct(Subscription.member_id)))
        .where(in_day(Subscription.started_at), Subscription.status.not_in(_UNPAID_STARTS))
        .scalar_subquery()
    )
    cancellations = (
        sa.select(sa.func.count())
        .select_from(Subscription)
        .where(in_day(Subscription.canceled_at))
        .scalar_subquery()
    )
    failed = (
        sa.select(sa.func.count())
        .select_from(Payment)
        .where(Payment.status == PaymentStatus.FAILED, in_day(Payment.failed_at))
        .scalar_subquery()
    )
    waiting = (
        sa.select(sa.func.count())
        .select_from(Topic)
        .where(Topic.status == TopicStatus.PROPOSED)
        .scalar_subquery()
    )
    row = db.session.execute(sa.select(new_patrons, cancellations, failed, waiting)).one()
    return Digest(since, until, *(int(value or 0) for value in row))
