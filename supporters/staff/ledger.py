"""The report ledger's rules: what a payment or a subscription contributes, as plain values.

Nothing here reads or writes the database: rows come in as :class:`PaymentFacts` and
:class:`SubscriptionFacts`, and what they add goes out as ledger rows (:class:`Entry`) and
rollup cells. :mod:`supporters.staff.listeners` feeds it every billing change and
:mod:`supporters.staff.rebuild` every row; :mod:`supporters.staff.rollups` writes what it
returns.

**Payments** are a ledger already: every figure drawn from them (revenue, refunds, what
disputes withdrew, failures, recoveries, by month) is a pure function ``f(row)`` of one payment
row (:func:`payment_cells`). The rollup is ``sum(f(row))`` over all rows; when a row changes,
``f(new) - f(old)`` is added, where ``old`` is read from the database just before the flush
writes ``new``. So the invariant is simply "the rollup equals the sum over the rows in the
database", whoever wrote them, and the rebuild recomputes exactly that sum in SQL.

**Subscriptions** are not a ledger: a row says what is true now, so an upgrade or a
cancellation leaves no trace once the row changes again. The ledger's rows
(:class:`~supporters.staff.models.Movement`) record each change of what a subscription
contributes (a member, a currency, a tier, an amount per month, or nothing). What a subscription contributes *according to the ledger* is the sum of its rows;
:func:`observe` compares that with what the row says now and returns the difference, classified
(new, expansion, churn, ...) from the member's own ledger rows (a :class:`Book`). Because the
comparison is with the ledger and not with the previous row values, rows written behind the
ORM's back are caught up the next time anything touches them, and observing the same state
twice appends nothing. Monthly, daily and cohort rollups are sums over the ledger
(:func:`entry_cells`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import Interval, PaymentKind, PaymentStatus, SubscriptionStatus
from supporters.staff.models import (
    COHORT_OFFSETS,
    CUSTOM_TIER,
    CohortCell,
    DayTotal,
    MovementKind,
    SubscriptionMonth,
    month_number,
)

FAILED_STATUSES = (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)
ENDED_STATUSES = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)

# The columns the ledger reads, in the order of the facts' fields.
PAYMENT_COLUMNS = (
    "status",
    "kind",
    "amount",
    "currency",
    "refunded_amount",
    "disputed_amount",
    "paid_at",
    "failed_at",
    "created_at",
)
SUBSCRIPTION_COLUMNS = (
    "member_id",
    "tier_id",
    "interval",
    "amount",
    "currency",
    "status",
    "started_at",
    "ended_at",
)


@dataclasses.dataclass(frozen=True)
class Share:
    """What a subscription contributes while it counts: one member, an amount per month."""

    member_id: int
    currency: str
    tier_key: int
    mrr: int


@dataclasses.dataclass(frozen=True)
class SubscriptionFacts:
    """The columns of a subscription row that the ledger reads."""

    id: int
    member_id: int
    tier_id: int | None
    interval: Interval
    amount: int
    currency: str
    status: SubscriptionStatus
    started_at: dt.datetime | None
    ended_at: dt.datetime | None

    @property
    def paying_share(self) -> Share:
        """Its contribution while it counts. Yearly plans count as a twelfth, rounded down."""
        mrr = self.amount if self.interval is Interval.MONTH else self.amount // 12
        return Share(self.member_id, self.currency, self.tier_id or CUSTOM_TIER, mrr)

    @property
    def share(self) -> Share | None:
        """Its contribution now: only active, trialing and past-due subscriptions count."""
        return self.paying_share if self.status in COUNTED_STATUSES else None


@dataclasses.dataclass(frozen=True)
class PaymentFacts:
    """The columns of a payment row that the payment rollups read."""

    status: PaymentStatus
    kind: PaymentKind
    amount: int
    currency: str
    refunded_amount: int
    disputed_amount: int
    paid_at: dt.datetime | None
    failed_at: dt.datetime | None
    created_at: dt.datetime


def payment_cells(p: PaymentFacts) -> Iterator[tuple[tuple[Any, ...], dict[str, int]]]:
    """What one payment adds to ``report_payment_months``: (key, column values)."""
    if p.status is PaymentStatus.PAID:
        key = (month_number(p.paid_at or p.created_at), p.currency, p.kind)
        yield (
            key,
            {
                "paid_count": 1,
                "paid_amount": p.amount,
                "refunded_amount": p.refunded_amount,
                "disputed_amount": p.disputed_amount,
            },
        )
        if p.failed_at is not None:
            key = (month_number(p.failed_at), p.currency, p.kind)
            yield key, {"recovered_count": 1, "recovered_amount": p.amount}
    elif p.status is PaymentStatus.FAILED or p.failed_at is not None:
        key = (month_number(p.failed_at or p.created_at), p.currency, p.kind)
        yield key, {"failed_count": 1, "failed_amount": p.amount}


@dataclasses.dataclass(frozen=True)
class Entry:
    """A ledger row (see :class:`supporters.staff.models.Movement`)."""

    subscription_id: int
    member_id: int
    occurred_at: dt.datetime
    currency: str
    tier_key: int
    kind: MovementKind
    mrr: int
    subscriptions: int
    patrons: int
    cohort_month: int | None

    @property
    def month(self) -> int:
        return month_number(self.occurred_at)

    @property
    def day(self) -> dt.date:
        return self.occurred_at.astimezone(dt.UTC).date()

    def values(self, recorded_at: dt.datetime) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "month": self.month,
            "day": self.day,
            "recorded_at": recorded_at,
        }


def entry_cells(entry: Entry) -> Iterator[tuple[str, tuple[Any, ...], dict[str, int]]]:
    """What one ledger row adds to the monthly, daily and cohort rollups: (table, key, values)."""
    if entry.kind is MovementKind.OBSERVED:
        return
    values = {"mrr": entry.mrr, "subscriptions": entry.subscriptions, "patrons": entry.patrons}
    key = (entry.month, entry.currency, entry.tier_key, entry.kind)
    yield SubscriptionMonth.__tablename__, key, values
    day_values = {"mrr": entry.mrr, "patrons": entry.patrons}
    yield DayTotal.__tablename__, (entry.day, entry.currency), day_values
    if entry.patrons:
        assert entry.cohort_month is not None
        for offset in COHORT_OFFSETS:
            # A patron at the end of month (cohort + offset): began by then, had not stopped.
            if entry.month <= entry.cohort_month + offset:
                cell = (entry.cohort_month, offset)
                yield CohortCell.__tablename__, cell, {"patrons": entry.patrons}


class Book:
    """The ledger rows of the members whose subscriptions are being observed, in memory."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.entries: list[Entry] = list(entries)

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def _of_subscription(self, subscription_id: int) -> list[Entry]:
        return [e for e in self.entries if e.subscription_id == subscription_id]

    def _of_member(self, member_id: int) -> list[Entry]:
        return [e for e in self.entries if e.member_id == member_id]

    def is_seen(self, subscription_id: int) -> bool:
        return bool(self._of_subscription(subscription_id))

    def has_counted(self, subscription_id: int) -> bool:
        return any(e.subscriptions for e in self._of_subscription(subscription_id))

    def last_at(self, subscription_id: int) -> dt.datetime | None:
        return max((e.occurred_at for e in self._of_subscription(subscription_id)), default=None)

    def applied(self, subscription_id: int) -> Share | None:
        """What the ledger says the subscription contributes now."""
        sums: dict[tuple[int, str, int], list[int]] = defaultdict(lambda: [0, 0])
        for e in self._of_subscription(subscription_id):
            total = sums[(e.member_id, e.currency, e.tier_key)]
            total[0] += e.mrr
            total[1] += e.subscriptions
        for (member_id, currency, tier_key), (mrr, count) in sums.items():
            if count > 0:
                return Share(member_id, currency, tier_key, mrr)
        return None

    def is_patron(self, member_id: int) -> bool:
        return sum(e.patrons for e in self._of_member(member_id)) > 0

    def has_been_patron(self, member_id: int) -> bool:
        return any(e.patrons > 0 for e in self._of_member(member_id))

    def cohort(self, member_id: int) -> int | None:
        firsts = [e for e in self._of_member(member_id) if e.patrons > 0]
        return min(firsts, key=lambda e: e.occurred_at).cohort_month if firsts else None

    def counted_subscriptions(self, member_id: int) -> int:
        return sum(e.subscriptions for e in self._of_member(member_id))


def _entry(
    subscription_id: int,
    share: Share,
    at: dt.datetime,
    kind: MovementKind,
    *,
    sign: int,
    patrons: int = 0,
    cohort: int | None = None,
) -> Entry:
    return Entry(
        subscription_id=subscription_id,
        member_id=share.member_id,
        occurred_at=at,
        currency=share.currency,
        tier_key=share.tier_key,
        kind=kind,
        mrr=sign * share.mrr,
        subscriptions=sign,
        patrons=patrons,
        cohort_month=cohort,
    )


def _start(book: Book, subscription_id: int, share: Share, at: dt.datetime) -> list[Entry]:
    member = share.member_id
    if book.is_patron(member):  # already pays through another subscription
        return [book.add(_entry(subscription_id, share, at, MovementKind.EXPANSION, sign=1))]
    if book.has_been_patron(member):
        cohort = book.cohort(member)
        kind = MovementKind.REACTIVATION
    else:
        cohort, kind = month_number(at), MovementKind.NEW
    entry = _entry(subscription_id, share, at, kind, sign=1, patrons=1, cohort=cohort)
    return [book.add(entry)]


def _stop(
    book: Book, subscription_id: int, share: Share, at: dt.datetime, churn: MovementKind
) -> list[Entry]:
    member = share.member_id
    if book.counted_subscriptions(member) > 1:  # still pays through another subscription
        return [book.add(_entry(subscription_id, share, at, MovementKind.CONTRACTION, sign=-1))]
    cohort = book.cohort(member)
    entry = _entry(
        subscription_id,
        share,
        at,
        churn,
        sign=-1,
        patrons=-1,
        cohort=month_number(at) if cohort is None else cohort,
    )
    return [book.add(entry)]


def _change(
    book: Book, subscription_id: int, old: Share, new: Share, at: dt.datetime
) -> list[Entry]:
    if old.member_id != new.member_id:  # the subscription was moved to another account
        return _stop(book, subscription_id, old, at, MovementKind.VOLUNTARY_CHURN) + _start(
            book, subscription_id, new, at
        )
    if old.currency != new.currency:
        return [
            book.add(_entry(subscription_id, old, at, MovementKind.CONTRACTION, sign=-1)),
            book.add(_entry(subscription_id, new, at, MovementKind.EXPANSION, sign=1)),
        ]
    if new.mrr > old.mrr:
        kind = MovementKind.EXPANSION
    elif new.mrr < old.mrr:
        kind = MovementKind.CONTRACTION
    else:
        kind = MovementKind.TRANSFER
    if old.tier_key != new.tier_key:
        return [
            book.add(_entry(subscription_id, old, at, kind, sign=-1)),
            book.add(_entry(subscription_id, new, at, kind, sign=1)),
        ]
    entry = dataclasses.replace(
        _entry(subscription_id, new, at, kind, sign=0), mrr=new.mrr - old.mrr
    )
    return [book.add(entry)]


def observe(
    book: Book,
    subscription_id: int,
    facts: SubscriptionFacts | None,
    *,
    at: dt.datetime,
    churn_kind: Callable[[], MovementKind],
) -> list[Entry]:
    """Bring the ledger of one subscription in line with its row (None: the row is gone).

    Returns the ledger rows to append (already added to ``book``): none when the ledger
    already says what the row says. The first sight of a subscription dates its start at its
    ``started_at``; one first seen already cancelled is recorded from its start to its end.
    Later changes are dated ``at`` (now), except an end with an ``ended_at`` of its own.
    """
    target = facts.share if facts is not None else None
    if facts is not None and not book.is_seen(subscription_id):
        start_at = facts.started_at or at
        if target is not None:
            return _start(book, subscription_id, target, start_at)
        ended_at = facts.ended_at
        if facts.status is SubscriptionStatus.CANCELED and ended_at and ended_at > start_at:
            share = facts.paying_share
            return _start(book, subscription_id, share, start_at) + _stop(
                book, subscription_id, share, ended_at, churn_kind()
            )
        observed = _entry(
            subscription_id, facts.paying_share, start_at, MovementKind.OBSERVED, sign=0
        )
        return [book.add(dataclasses.replace(observed, mrr=0))]

    applied = book.applied(subscription_id)
    if applied == target:
        return []
    if applied is None:
        assert target is not None and facts is not None
        # Counting for the first time (after being incomplete): from its real start.
        first = not book.has_counted(subscription_id)
        return _start(book, subscription_id, target, (facts.started_at or at) if first else at)
    if target is None:
        end_at = at
        if facts is not None and facts.status in ENDED_STATUSES and facts.ended_at is not None:
            end_at = facts.ended_at
        end_at = max(end_at, book.last_at(subscription_id) or end_at)
        return _stop(book, subscription_id, applied, end_at, churn_kind())
    return _change(book, subscription_id, applied, target, at)
