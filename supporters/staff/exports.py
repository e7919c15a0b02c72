"""The staff's CSV downloads: members, payments, and every report table and chart.

Nothing collects the whole export in memory: the members and payments exports walk their
tables by keyset in chunks of plain rows, and the response body is a generator
(:func:`supporters.downloads.stream_csv`, which also keeps cells from running as formulas).
Every report table and chart downloads with the same figures the page shows (the same query
functions). Amounts go out in major units with their currency beside them, never converted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import Payment, Subscription, SubscriptionStatus, Tier
from supporters.extensions import db
from supporters.members.models import Member
from supporters.money import exponent
from supporters.numbers import round_half_up
from supporters.staff import member_list
from supporters.staff.models import COHORT_OFFSETS
from supporters.staff.queries import at_risk, headline, monthly, retention

PAYMENT_CHUNK = 2_000
_EXPONENTS: dict[str, int] = {}


def money(amount: int | None, currency: str | None) -> Decimal | None:
    """Minor units as an exact amount in major units (the currency's decimals, cached)."""
    if amount is None or currency is None:
        return None
    places = _EXPONENTS.get(currency)
    if places is None:
        places = _EXPONENTS[currency] = exponent(currency)
    return Decimal(amount).scaleb(-places)


# -- members and payments --------------------------------------------------------------------

MEMBER_HEADER = (
    "member_id",
    "email",
    "name",
    "role",
    "joined_at",
    "subscription_status",
    "tier",
    "interval",
    "amount",
    "currency",
    "started_at",
    "cancel_at_period_end",
    "current_period_end",
)


def member_rows(filters: member_list.MemberFilter) -> Iterator[tuple[Any, ...]]:
    tiers = dict(db.session.execute(sa.select(Tier.id, Tier.name)).all())
    for member, subscription in member_list.iter_members(filters):
        base = (member.id, member.email, member.display_name, member.role.value, member.created_at)
        if subscription is None:
            yield base + (None,) * (len(MEMBER_HEADER) - len(base))
            continue
        yield base + (
            subscription.status.value,
            tiers.get(subscription.tier_id, "") if subscription.tier_id else "custom",
            subscription.interval.value,
            money(subscription.amount, subscription.currency),
            subscription.currency,
            subscription.started_at,
            subscription.cancel_at_period_end,
            subscription.current_period_end,
        )


PAYMENT_HEADER = (
    "payment_id",
    "created_at",
    "member_id",
    "email",
    "kind",
    "status",
    "amount",
    "refunded",
    "lost_to_disputes",
    "currency",
    "paid_at",
    "failed_at",
    "disputed_at",
    "subscription_id",
    "stripe_invoice_id",
    "stripe_charge_id",
)


def payment_rows(start: dt.date, end: dt.date) -> Iterator[tuple[Any, ...]]:
    """Payments created (invoiced) from ``start`` to ``end`` inclusive, oldest first."""
    low = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    high = dt.datetime.max.replace(tzinfo=dt.UTC)
    if end < dt.date.max:  # the calendar's last day has no day after it
        high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    columns = (
        Payment.id,
        Payment.created_at,
        Payment.member_id,
        Member.email,
        Payment.kind,
        Payment.status,
        Payment.amount,
        Payment.refunded_amount,
        Payment.disputed_amount,
        Payment.currency,
        Payment.paid_at,
        Payment.failed_at,
        Payment.disputed_at,
        Payment.subscription_id,
        Payment.stripe_invoice_id,
        Payment.stripe_charge_id,
    )
    after: tuple[dt.datetime, int] | None = None
    while True:
        statement = (
            sa.select(*columns)
            .outerjoin(Member, Member.id == Payment.member_id)
            .where(Payment.created_at >= low, Payment.created_at < high)
            .order_by(Payment.created_at, Payment.id)
            .limit(PAYMENT_CHUNK)
        )
        if after is not None:
            # The first condition lets the created_at index start at the last row sent.
            statement = statement.where(
                Payment.created_at >= after[0], sa.tuple_(Payment.created_at, Payment.id) > after
            )
        rows = db.session.execute(statement).all()
        if not rows:
            return
        for r in rows:
            yield (
                r.id,
                r.created_at,
                r.member_id,
                r.email,
                r.kind.value,
                r.status.value,
                money(r.amount, r.currency),
                money(r.refunded_amount, r.currency),
                money(r.disputed_amount, r.currency),
                r.currency,
                r.paid_at,
                r.failed_at,
                r.disputed_at,
                r.subscription_id,
                r.stripe_invoice_id,
                r.stripe_charge_id,
            )
        after = (rows[-1].created_at, rows[-1].id)


# -- report tables ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A report table as CSV: its title, columns and rows."""

    title: str
    header: Sequence[str]
    rows: Callable[[], Iterable[Sequence[Any]]]


MONTHS_SHOWN = 24


def _patrons() -> Iterable[Sequence[Any]]:
    for m in monthly.patron_months(monthly.last_months(MONTHS_SHOWN)):
        yield (
            m.start,
            m.patrons_at_start,
            m.new,
            m.reactivated,
            m.voluntary_churn,
            m.failed_churn,
            m.patrons_at_end,
            m.churn_rate,
        )


def _revenue() -> Iterable[Sequence[Any]]:
    for currency, series in monthly.revenue_months(monthly.last_months(MONTHS_SHOWN)).items():
        for m in series:
            yield (
                m.start,
                currency,
                money(m.mrr_at_start, currency),
                *(money(m.movements[kind], currency) for kind in monthly.MRR_KINDS),
                money(m.mrr_at_end, currency),
                money(m.paid, currency),
                money(m.gifts, currency),
                money(m.refunded, currency),
                money(m.disputed, currency),
                money(m.received, currency),
            )


def _cohorts() -> Iterable[Sequence[Any]]:
    for c in retention.cohorts(monthly.last_months(MONTHS_SHOWN)):
        yield (
            c.start,
            c.size,
            *(c.retained[k] for k in COHORT_OFFSETS),
            *(c.share(k) for k in COHORT_OFFSETS),
        )


def _failures() -> Iterable[Sequence[Any]]:
    for f in at_risk.failure_months(monthly.last_months(MONTHS_SHOWN)):
        yield (
            f.start,
            f.currency,
            f.recovered_count,
            money(f.recovered_amount, f.currency),
            f.failed_count,
            money(f.failed_amount, f.currency),
            f.recovery_rate,
        )


def _tiers() -> Iterable[Sequence[Any]]:
    for t in headline.now_figures().by_tier:
        yield (t.name or "custom", t.currency, t.subscriptions, money(t.mrr, t.currency))


def _lifetime() -> Iterable[Sequence[Any]]:
    now = headline.now_figures()
    for v in retention.lifetime_values(now):
        yield (
            v.currency,
            None
            if v.average_revenue is None
            else money(round_half_up(v.average_revenue), v.currency),
            v.average_churn,
            None if v.estimate is None else money(round_half_up(v.estimate), v.currency),
            None
            if v.received_per_patron is None
            else money(round_half_up(v.received_per_patron), v.currency),
        )


def _at_risk() -> Iterable[Sequence[Any]]:
    columns = (
        Subscription.member_id,
        Member.email,
        Member.display_name,
        Subscription.status,
        Subscription.amount,
        Subscription.currency,
        Subscription.interval,
        Subscription.current_period_start,
        Subscription.current_period_end,
    )
    past_due = Subscription.status == SubscriptionStatus.PAST_DUE
    ending = sa.and_(
        Subscription.cancel_at_period_end.is_(True),
        Subscription.status.in_(COUNTED_STATUSES),
        ~past_due,
    )
    for reason, condition, order in (
        ("past_due", past_due, Subscription.current_period_start),
        ("ending", ending, Subscription.current_period_end),
    ):
        statement = (
            sa.select(*columns)
            .join(Member, Member.id == Subscription.member_id)
            .where(condition)
            .order_by(order, Subscription.id)
            .execution_options(yield_per=1_000)
        )
        for r in db.session.execute(statement):
            yield (
                reason,
                r.member_id,
                r.email,
                r.display_name,
                r.status.value,
                money(r.amount, r.currency),
                r.currency,
                r.interval.value,
                r.current_period_start,
                r.current_period_end,
            )


DATASETS: dict[str, Dataset] = {
    "patrons": Dataset(
        "Patrons per month",
        (
            "month",
            "patrons_at_start",
            "new",
            "reactivated",
            "voluntary_churn",
            "failed_payment_churn",
            "patrons_at_end",
            "churn_rate",
        ),
        _patrons,
    ),
    "revenue": Dataset(
        "Recurring revenue and money received per month",
        (
            "month",
            "currency",
            "mrr_at_start",
            *(f"mrr_{kind.value}" for kind in monthly.MRR_KINDS),
            "mrr_at_end",
            "subscription_payments",
            "gifts",
            "refunded",
            "lost_to_disputes",
            "received_net",
        ),
        _revenue,
    ),
    "cohorts": Dataset(
        "Cohort retention",
        (
            "cohort_month",
            "size",
            *(f"patrons_after_{k}_months" for k in COHORT_OFFSETS),
            *(f"retention_after_{k}_months" for k in COHORT_OFFSETS),
        ),
        _cohorts,
    ),
    "failed-payments": Dataset(
        "Failed payments recovered and not recovered",
        (
            "month_first_failed",
            "currency",
            "recovered",
            "recovered_amount",
            "not_recovered",
            "not_recovered_amount",
            "recovery_rate",
        ),
        _failures,
    ),
    "tiers": Dataset(
        "Patrons by tier",
        ("tier", "currency", "patrons", "mrr"),
        _tiers,
    ),
    "lifetime-value": Dataset(
        "Average lifetime value",
        (
            "currency",
            "average_revenue_per_patron",
            "average_monthly_churn",
            "estimated_lifetime_value",
            "received_per_patron_so_far",
        ),
        _lifetime,
    ),
    "at-risk": Dataset(
        "Patrons at risk",
        (
            "reason",
            "member_id",
            "email",
            "name",
            "status",
            "amount",
            "currency",
            "interval",
            "current_period_start",
            "current_period_end",
        ),
        _at_risk,
    ),
}
