"""Report tables: the ledger of recurring-revenue movements and the monthly rollups built from it.

Months are stored as integers, ``year * 12 + month - 1`` (see :func:`month_number`), so cohort
arithmetic ("six months after joining") is plain addition on every database.

The ledger (``report_movements``) is history that the billing tables do not keep: a
subscription row only says what is true now, so an upgrade in March is gone by April. It is
written in the same transaction as the subscription change that it records (see
:mod:`supporters.staff.listeners`) and only ever appended to. The other tables are sums over the
ledger and over the ``payments`` table; ``flask staff rebuild-rollups`` recomputes them.

The ledger has no foreign keys on purpose: it outlives the rows it describes (a member who
deletes their account leaves an anonymous number behind, and last year's churn stays right).

This module also declares the indexes the staff reports need on other features' tables
(members list sorting and search, the at-risk list), so that they live with the queries that
use them and the migration that creates them.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from supporters.billing.models import PaymentKind, Subscription
from supporters.db import currency_check, enum_column, utcnow
from supporters.extensions import Model
from supporters.members.models import Member

# Months after the sign-up month at which cohort retention is measured.
COHORT_OFFSETS = (1, 3, 6, 12)
# tier_key of a subscription with a custom amount (no tier).
CUSTOM_TIER = 0


def month_number(moment: dt.datetime | dt.date) -> int:
    """The month a moment falls in (UTC), as ``year * 12 + month - 1``."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC)
    return moment.year * 12 + moment.month - 1


def month_start(number: int) -> dt.date:
    """The first day of a month number."""
    return dt.date(number // 12, number % 12 + 1, 1)


class MovementKind(enum.StrEnum):
    """Why a subscription's contribution to recurring revenue changed."""

    OBSERVED = "observed"  # seen, contributes nothing (never paying yet): a marker
    NEW = "new"  # a member's first paying subscription
    REACTIVATION = "reactivation"  # a former patron pays again
    EXPANSION = "expansion"  # a patron gives more (higher amount, or a second subscription)
    CONTRACTION = "contraction"  # a patron gives less, and still gives
    TRANSFER = "transfer"  # same amount moved to another tier: nets to zero
    VOLUNTARY_CHURN = "voluntary_churn"  # stopped being a patron: cancelled
    FAILED_CHURN = "failed_churn"  # stopped being a patron: renewals kept failing


class Movement(Model):
    """One change of one subscription's contribution to recurring revenue and patron counts.

    ``mrr`` and ``subscriptions`` are signed deltas in ``currency`` and ``tier_key``; the sums
    over a subscription's rows are what it contributes now. ``patrons`` is +1 when the member
    becomes a patron, -1 when they stop; ``cohort_month`` is the month of their first "new".
    """

    __tablename__ = "report_movements"
    __table_args__ = (
        sa.CheckConstraint("subscriptions IN (-1, 0, 1)", name="subscriptions_unit"),
        sa.CheckConstraint("patrons IN (-1, 0, 1)", name="patrons_unit"),
        sa.CheckConstraint("patrons = 0 OR cohort_month IS NOT NULL", name="patrons_have_cohort"),
        currency_check(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(index=True)
    member_id: Mapped[int] = mapped_column(index=True)
    occurred_at: Mapped[dt.datetime]
    month: Mapped[int]
    day: Mapped[dt.date]
    currency: Mapped[str] = mapped_column(sa.String(3))
    tier_key: Mapped[int]
    kind: Mapped[MovementKind] = mapped_column(enum_column(MovementKind, "movement_kind"))
    mrr: Mapped[int] = mapped_column(sa.BigInteger)
    subscriptions: Mapped[int]
    patrons: Mapped[int]
    cohort_month: Mapped[int | None]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SubscriptionMonth(Model):
    """Sums of the ledger by month, currency, tier and kind of movement."""

    __tablename__ = "report_subscription_months"
    __table_args__ = (currency_check(),)

    month: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    tier_key: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[MovementKind] = mapped_column(
        enum_column(MovementKind, "movement_kind"), primary_key=True
    )
    mrr: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    subscriptions: Mapped[int] = mapped_column(default=0)
    patrons: Mapped[int] = mapped_column(default=0)


class DayTotal(Model):
    """Sums of the ledger by day and currency: "against 30 days ago" without a ledger scan."""

    __tablename__ = "report_days"
    __table_args__ = (currency_check(),)

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    mrr: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    patrons: Mapped[int] = mapped_column(default=0)


class CohortCell(Model):
    """Members of a sign-up month who were patrons at the end of ``months_after`` months later."""

    __tablename__ = "report_cohorts"

    cohort_month: Mapped[int] = mapped_column(primary_key=True)
    months_after: Mapped[int] = mapped_column(primary_key=True)
    patrons: Mapped[int] = mapped_column(default=0)


class PaymentMonth(Model):
    """Sums of the payments table by month, currency and kind.

    Paid figures fall in the month of ``paid_at``, refunds and what disputes withdrew in the
    month of the payment they take back; failure figures fall in the month the payment first
    failed (``failed_at``).
    """

    __tablename__ = "report_payment_months"
    __table_args__ = (currency_check(),)

    month: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    kind: Mapped[PaymentKind] = mapped_column(
        enum_column(PaymentKind, "payment_kind"), primary_key=True
    )
    paid_count: Mapped[int] = mapped_column(default=0)
    paid_amount: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    disputed_amount: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    failed_count: Mapped[int] = mapped_column(default=0)
    failed_amount: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    recovered_count: Mapped[int] = mapped_column(default=0)
    recovered_amount: Mapped[int] = mapped_column(sa.BigInteger, default=0)


# -- indexes the staff pages need on other features' tables ------------------------------------

_members = Member.__table__
_subscriptions = Subscription.__table__

# The members list: newest first, or by name, walked by keyset (the last row's values).
sa.Index("ix_members_created_at_id", _members.c.created_at, _members.c.id)
sa.Index("ix_members_display_name_id", _members.c.display_name, _members.c.id)
# Search by any part of a name or address: trigram GIN on PostgreSQL (pg_trgm); on SQLite
# the same declaration is a plain index that the LIKE search does not use.
sa.Index(
    "ix_members_search",
    _members.c.email,
    _members.c.display_name,
    postgresql_using="gin",
    postgresql_ops={"email": "gin_trgm_ops", "display_name": "gin_trgm_ops"},
)
# The at-risk list, read in index order: patrons whose cancellation is scheduled, soonest
# first; patrons past due, longest first. The id settles ties, as the queries' ORDER BY does.
sa.Index(
    "ix_subscriptions_ending",
    _subscriptions.c.cancel_at_period_end,
    _subscriptions.c.current_period_end,
    _subscriptions.c.id,
)
sa.Index(
    "ix_subscriptions_status_period_start",
    _subscriptions.c.status,
    _subscriptions.c.current_period_start,
    _subscriptions.c.id,
)

sa.event.listen(
    _members,
    "before_create",
    sa.DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(  # type: ignore[no-untyped-call]
        dialect="postgresql"
    ),
)
