"""Report rollups, kept in the same transaction as the billing change that moves them.

Two sources feed the staff reports, and each is kept exact in its own simple way:

**Payments** are a ledger already: every figure drawn from them (revenue, refunds, what
disputes withdrew, failures, recoveries, by month) is a pure function ``f(row)`` of one payment row. The rollup is
``sum(f(row))`` over all rows; when a row changes, ``f(new) - f(old)`` is added, where ``old``
is read from the database just before the flush writes ``new``. So the invariant is simply
"the rollup equals the sum over the rows in the database", whoever wrote them, and the
rebuild recomputes exactly that sum in SQL.

**Subscriptions** are not a ledger: a row says what is true now, so an upgrade or a
cancellation leaves no trace once the row changes again. :class:`Movement` rows record each
change of what a subscription contributes (a member, a currency, a tier, an amount per month,
or nothing). What a subscription contributes *according to the ledger* is the sum of its rows;
on every flush that touches a subscription, that is compared with what the row says now and the
difference is appended, classified (new, expansion, churn, ...) from the member's own ledger
rows. Because the comparison is with the ledger and not with the previous row values, rows
written behind the ORM's back are caught up the next time anything touches them, and observing
the same state twice appends nothing. Monthly, daily and cohort rollups are sums over the
ledger; the rebuild recomputes them with ``GROUP BY``.

Writes that the listeners see:

* ORM inserts, updates and deletes of payments and subscriptions (``before_flush`` reads the
  old payment values and subscription statuses; ``after_flush`` writes ledger rows and works
  out the deltas);
* single-row INSERTs run through the session as statements, as ``insert_ignoring_conflicts``
  and ``insert_returning`` do (``do_orm_execute``): an inserted payment is counted at once
  (from the row RETURNING gave back, else read by its Stripe id), an inserted subscription is
  observed at commit, the status it was inserted with standing for its status before;
* deletion of a member through the ORM (the database cascades their subscriptions away): what
  those subscriptions contributed ends.

The rollup deltas of a unit of work are added up in memory and written at ``before_commit``
as upserts in primary-key order: the rollup rows are locked last and briefly, and always in the
same order, so concurrent units of work cannot deadlock on them. Inside a SAVEPOINT they are
written at once (so that a rolled-back savepoint takes them with it).

Bulk writes (many rows per statement, as ``seed-demo`` does) and Core UPDATE/DELETE statements
on payments or subscriptions cannot be followed row by row: they mark the unit of work stale
and a warning is logged at commit unless :func:`rebuild` ran in it (``seed-demo`` does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import (
    Interval,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.models import Member
from supporters.staff.models import (
    COHORT_OFFSETS,
    CUSTOM_TIER,
    CohortCell,
    DayTotal,
    Movement,
    MovementKind,
    PaymentMonth,
    SubscriptionMonth,
    month_number,
)

log = logging.getLogger(__name__)

EntityT = TypeVar("EntityT", Payment, Subscription)

FAILED_STATUSES = (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)
ENDED_STATUSES = (SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED)

_payments = cast(sa.Table, Payment.__table__)
_subscriptions = cast(sa.Table, Subscription.__table__)
_movements = cast(sa.Table, Movement.__table__)

ROLLUP_TABLES: tuple[sa.Table, ...] = tuple(
    model.__table__  # type: ignore[misc]
    for model in (SubscriptionMonth, DayTotal, CohortCell, PaymentMonth)
)

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


def now() -> dt.datetime:
    """The clock that dates changes without a date of their own (tests replace it)."""
    return utcnow()


# -- the pure part: what rows contribute ----------------------------------------------------------


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


def entry_cells(entry: Entry) -> Iterator[tuple[sa.Table, tuple[Any, ...], dict[str, int]]]:
    """What one ledger row adds to the monthly, daily and cohort rollups."""
    if entry.kind is MovementKind.OBSERVED:
        return
    values = {"mrr": entry.mrr, "subscriptions": entry.subscriptions, "patrons": entry.patrons}
    key = (entry.month, entry.currency, entry.tier_key, entry.kind)
    yield SubscriptionMonth.__table__, key, values  # type: ignore[misc]
    day_values = {"mrr": entry.mrr, "patrons": entry.patrons}
    yield DayTotal.__table__, (entry.day, entry.currency), day_values  # type: ignore[misc]
    if entry.patrons:
        assert entry.cohort_month is not None
        for offset in COHORT_OFFSETS:
            # A patron at the end of month (cohort + offset): began by then, had not stopped.
            if entry.month <= entry.cohort_month + offset:
                cell = (entry.cohort_month, offset)
                yield CohortCell.__table__, cell, {"patrons": entry.patrons}  # type: ignore[misc]


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


# -- deltas: added up per unit of work, written as ordered upserts ------------------------------


class Deltas:
    """Rollup increments keyed by (table, primary key)."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, tuple[Any, ...]], Counter[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def add(
        self, table: sa.Table, key: tuple[Any, ...], values: Mapping[str, int], sign: int = 1
    ) -> None:
        cell = self.cells.setdefault((table.name, key), Counter())
        for column, value in values.items():
            cell[column] += sign * value

    def add_entries(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            for table, key, values in entry_cells(entry):
                self.add(table, key, values)

    def add_payment(self, facts: PaymentFacts | None, sign: int) -> None:
        if facts is None:
            return
        for key, values in payment_cells(facts):
            self.add(PaymentMonth.__table__, key, values, sign)  # type: ignore[arg-type]

    def merge(self, other: Deltas) -> None:
        for (name, key), values in other.cells.items():
            self.cells.setdefault((name, key), Counter()).update(values)

    def write(self, connection: sa.Connection) -> None:
        """Upsert every increment, table by table in primary-key order (no deadlocks)."""
        for table in ROLLUP_TABLES:
            pk = [column.name for column in table.primary_key]
            value_columns = [c.name for c in table.columns if c.name not in pk]
            rows = []
            for (_name, key), values in sorted(
                ((k, v) for k, v in self.cells.items() if k[0] == table.name),
                key=lambda item: _sort_key(item[0][1]),
            ):
                if any(values.values()):
                    rows.append(
                        {**dict(zip(pk, key, strict=True)), **{c: values[c] for c in value_columns}}
                    )
            if rows:
                upsert = _upsert(connection.dialect.name, table, tuple(value_columns))
                connection.execute(upsert, rows)
        self.cells.clear()


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str(part) if isinstance(part, str) else part for part in key)


@functools.cache
def _upsert(dialect: str, table: sa.Table, value_columns: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT DO UPDATE`` adding to a rollup's values, built once per table."""
    if dialect == "postgresql":
        insert: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        insert = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported databases reach here
        raise NotImplementedError(dialect)
    return insert.on_conflict_do_update(
        index_elements=[c.name for c in table.primary_key],
        set_={c: table.c[c] + insert.excluded[c] for c in value_columns},
    )


# -- reading rows and ledgers --------------------------------------------------------------------


def _payment_facts(
    connection: sa.Connection, where: Any, params: Mapping[str, Any] | None = None
) -> dict[int, PaymentFacts]:
    """The facts of the payments ``where`` selects (or of a prebuilt query, with ``params``)."""
    statement = where if isinstance(where, sa.Select) else _payment_facts_select(where)
    rows = connection.execute(statement, params or {})
    return {row.id: PaymentFacts(*row[1:]) for row in rows}


def _payment_facts_select(where: Any) -> sa.Select[Any]:
    columns = [_payments.c[name] for name in PAYMENT_COLUMNS]
    return sa.select(_payments.c.id, *columns).where(where)


def _subscription_facts(
    connection: sa.Connection, where: Any, params: Mapping[str, Any] | None = None
) -> list[SubscriptionFacts]:
    """The facts of the subscriptions ``where`` selects (or of a prebuilt query), by member."""
    statement = where if isinstance(where, sa.Select) else _subscription_facts_select(where)
    return [SubscriptionFacts(*row) for row in connection.execute(statement, params or {})]


def _subscription_facts_select(where: Any) -> sa.Select[Any]:
    columns = [_subscriptions.c[name] for name in SUBSCRIPTION_COLUMNS]
    return (
        sa.select(_subscriptions.c.id, *columns)
        .where(where)
        .order_by(
            _subscriptions.c.member_id,
            _subscriptions.c.started_at.asc().nulls_last(),
            _subscriptions.c.id,
        )
    )


def _entries(
    connection: sa.Connection, where: Any, params: Mapping[str, Any] | None = None
) -> list[Entry]:
    """The ledger rows ``where`` selects (or a prebuilt query does), oldest first."""
    statement = where if isinstance(where, sa.Select) else _entries_select(where)
    return [Entry(*row) for row in connection.execute(statement, params or {})]


def _entries_select(where: Any) -> sa.Select[Any]:
    names = [f.name for f in dataclasses.fields(Entry)]
    return sa.select(*(_movements.c[n] for n in names)).where(where).order_by(_movements.c.id)


# The reads every billing change makes, built once: building a statement (and its cache key)
# costs SQLAlchemy more than running it.
_IDS: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
_PAYMENTS_BY_ID = _payment_facts_select(_payments.c.id.in_(_IDS))
_SUBSCRIPTIONS_BY_ID = _subscription_facts_select(_subscriptions.c.id.in_(_IDS))
_OWN_ENTRIES = _movements.c.subscription_id == sa.bindparam("subscription_id")
_ENTRIES_OF_SUBSCRIPTION = _entries_select(_OWN_ENTRIES)
_ENTRIES_OF_SUBSCRIPTION_OR_MEMBER = _entries_select(
    sa.or_(_OWN_ENTRIES, _movements.c.member_id == sa.bindparam("member_id"))
)
_ENTRIES_OF_MEMBERS = _entries_select(
    _movements.c.member_id.in_(sa.bindparam("members", expanding=True))
)
_INSERT_ENTRIES = sa.insert(_movements)


def _insert_entries(connection: sa.Connection, entries: Sequence[Entry]) -> None:
    if entries:
        recorded_at = utcnow()
        connection.execute(_INSERT_ENTRIES, [e.values(recorded_at) for e in entries])


def _latest_payment_failed(connection: sa.Connection, subscription_id: int) -> bool:
    status = connection.scalar(
        sa.select(_payments.c.status)
        .where(_payments.c.subscription_id == subscription_id)
        .order_by(_payments.c.created_at.desc(), _payments.c.id.desc())
        .limit(1)
    )
    return status is PaymentStatus.FAILED


def _churn_kind(
    connection: sa.Connection, subscription_id: int, old_status: SubscriptionStatus | None
) -> Callable[[], MovementKind]:
    """Failed-payment churn: it ended while a renewal was unpaid (past due, unpaid, or its
    latest invoice failed); voluntary otherwise. Asked only when a subscription stops."""

    def kind() -> MovementKind:
        if old_status in FAILED_STATUSES or _latest_payment_failed(connection, subscription_id):
            return MovementKind.FAILED_CHURN
        return MovementKind.VOLUNTARY_CHURN

    return kind


def _observe_one(
    connection: sa.Connection,
    subscription_id: int,
    facts: SubscriptionFacts | None,
    old_status: SubscriptionStatus | None,
    at: dt.datetime,
) -> list[Entry]:
    """Observe one subscription against the ledger in the database; write its new rows."""
    # The book holds the rows of every member the subscription's rows name, and of its member
    # now: one read gives them unless its rows name another member (it was moved).
    if facts is None:
        entries = _entries(
            connection, _ENTRIES_OF_SUBSCRIPTION, {"subscription_id": subscription_id}
        )
    else:
        entries = _entries(
            connection,
            _ENTRIES_OF_SUBSCRIPTION_OR_MEMBER,
            {"subscription_id": subscription_id, "member_id": facts.member_id},
        )
    members = {e.member_id for e in entries if e.subscription_id == subscription_id}
    members |= {facts.member_id} if facts else set()
    if members and (facts is None or members != {facts.member_id}):
        entries = _entries(connection, _ENTRIES_OF_MEMBERS, {"members": sorted(members)})
    book = Book(entries)
    new = observe(
        book,
        subscription_id,
        facts,
        at=at,
        churn_kind=_churn_kind(connection, subscription_id, old_status),
    )
    _insert_entries(connection, new)
    return new


# -- the session listeners ---------------------------------------------------------------------

_INFO_KEY = "staff_rollups"


@dataclasses.dataclass
class _Unit:
    """What the listeners remember about the current unit of work (in ``session.info``)."""

    deltas: Deltas = dataclasses.field(default_factory=Deltas)
    old_payments: dict[int, PaymentFacts] = dataclasses.field(default_factory=dict)
    deleted_payments: set[int] = dataclasses.field(default_factory=set)
    # Subscriptions to observe at commit, with their status when the unit of work began.
    subscriptions: set[int] = dataclasses.field(default_factory=set)
    old_statuses: dict[int, SubscriptionStatus] = dataclasses.field(default_factory=dict)
    inserted_subscriptions: set[str] = dataclasses.field(default_factory=set)
    deleted_members: set[int] = dataclasses.field(default_factory=set)
    is_stale: bool = False


def _unit(session: Session) -> _Unit:
    unit = session.info.get(_INFO_KEY)
    if unit is None:
        unit = session.info[_INFO_KEY] = _Unit()
    return unit


def _has_changes(obj: object, columns: Iterable[str]) -> bool:
    state = sa.inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in columns)


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    payments: set[int] = set()
    subscriptions: set[int] = set()
    unit = _unit(session)
    for obj in session.dirty:
        if isinstance(obj, Payment) and _has_changes(obj, PAYMENT_COLUMNS):
            payments.add(obj.id)
        elif isinstance(obj, Subscription) and _has_changes(obj, SUBSCRIPTION_COLUMNS):
            subscriptions.add(obj.id)
    for obj in session.deleted:
        if isinstance(obj, Payment):
            payments.add(obj.id)
            unit.deleted_payments.add(obj.id)
        elif isinstance(obj, Subscription):
            subscriptions.add(obj.id)
        elif isinstance(obj, Member):
            unit.deleted_members.add(obj.id)
    # What the database holds now is what the rollups already count.
    connection = session.connection() if payments or subscriptions else None
    if payments and connection is not None:
        unit.old_payments.update(
            _payment_facts(connection, _PAYMENTS_BY_ID, {"ids": list(payments)})
        )
    first_seen = subscriptions - unit.subscriptions
    if first_seen and connection is not None:
        rows = connection.execute(
            sa.select(_subscriptions.c.id, _subscriptions.c.status).where(
                _subscriptions.c.id.in_(first_seen)
            )
        )
        unit.old_statuses.update({row.id: row.status for row in rows})
    unit.subscriptions |= subscriptions


def _after_flush(session: Session, flush_context: Any) -> None:
    unit = _unit(session)
    unit.subscriptions |= {o.id for o in session.new if isinstance(o, Subscription)}
    new_payments = {o.id for o in session.new if isinstance(o, Payment)}
    if not (new_payments or unit.old_payments):
        return
    connection = session.connection()
    deltas = Deltas()
    changed = (new_payments | set(unit.old_payments)) - unit.deleted_payments
    current = _payment_facts(connection, _PAYMENTS_BY_ID, {"ids": list(changed)}) if changed else {}
    for payment_id in changed | unit.deleted_payments:
        deltas.add_payment(unit.old_payments.get(payment_id), -1)
        deltas.add_payment(current.get(payment_id), 1)
    unit.old_payments.clear()
    unit.deleted_payments.clear()
    _keep(session, unit, deltas)


def _observe_unit(session: Session, unit: _Unit) -> None:
    """Observe every subscription the unit of work touched, in its final state."""
    if not (unit.subscriptions or unit.inserted_subscriptions or unit.deleted_members):
        return
    connection = session.connection()
    ids = set(unit.subscriptions)
    if unit.inserted_subscriptions:
        ids |= set(
            connection.scalars(
                sa.select(_subscriptions.c.id).where(
                    _subscriptions.c.stripe_subscription_id.in_(unit.inserted_subscriptions)
                )
            )
        )
    if unit.deleted_members:  # the database cascaded their subscriptions away
        ids |= set(
            connection.scalars(
                sa.select(_movements.c.subscription_id)
                .where(_movements.c.member_id.in_(unit.deleted_members))
                .group_by(_movements.c.subscription_id)
                .having(sa.func.sum(_movements.c.subscriptions) != 0)
            )
        )
    rows = _subscription_facts(connection, _SUBSCRIPTIONS_BY_ID, {"ids": sorted(ids)})
    facts = {f.id: f for f in rows}
    at = now()
    for subscription_id in sorted(ids):
        row = facts.get(subscription_id)
        old = unit.old_statuses.get(subscription_id, row.status if row else None)
        unit.deltas.add_entries(_observe_one(connection, subscription_id, row, old, at))
    unit.subscriptions.clear()
    unit.old_statuses.clear()
    unit.inserted_subscriptions.clear()
    unit.deleted_members.clear()


def _keep(session: Session, unit: _Unit, deltas: Deltas) -> None:
    """Write deltas now inside a savepoint; otherwise keep them for the commit."""
    if session.in_nested_transaction():
        deltas.write(session.connection())
    else:
        unit.deltas.merge(deltas)


def _on_execute(state: Any) -> Any:
    """Follow Core statements on payments and subscriptions run through the session."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return None
    # An ORM statement names an annotated copy of the table: compare names.
    name = getattr(getattr(state.statement, "table", None), "name", None)
    if name not in (_payments.name, _subscriptions.name):
        return None
    table = _payments if name == _payments.name else _subscriptions
    unit = _unit(state.session)
    parameters = state.parameters
    is_many = isinstance(parameters, Sequence) and len(parameters) > 1
    if state.is_update or state.is_delete or is_many:
        unit.is_stale = True
        return None
    result, rows = _invoke(state)
    if not rows:
        return result

    @functools.cache
    def inserted_values() -> dict[str, Any]:
        """The values the INSERT was given (in the statement, or as parameters)."""
        values = dict(state.statement.compile(dialect=state.session.get_bind().dialect).params)
        if isinstance(parameters, Mapping):
            values.update(parameters)
        elif parameters:
            values.update(parameters[0])
        return values

    if table is _subscriptions:
        _note_inserted_subscription(unit, inserted_values, rows)
        return result
    # The row came back whole (``insert_returning``): what it adds is known without a read.
    written = [p for p in (_entity(row, Payment) for row in rows) if p is not None]
    deltas = Deltas()
    if written:
        for payment in written:
            deltas.add_payment(PaymentFacts(*(getattr(payment, c) for c in PAYMENT_COLUMNS)), 1)
    else:
        values = inserted_values()
        keys = ("stripe_invoice_id", "stripe_payment_intent_id", "stripe_charge_id")
        key = next((k for k in keys if values.get(k)), None)
        if key is None:
            unit.is_stale = True
            return result
        connection = state.session.connection()
        for facts in _payment_facts(connection, _payments.c[key] == values[key]).values():
            deltas.add_payment(facts, 1)
    _keep(state.session, unit, deltas)
    return result


def _note_inserted_subscription(
    unit: _Unit, inserted_values: Callable[[], Mapping[str, Any]], rows: Sequence[Any]
) -> None:
    """Remember an inserted subscription, to observe at commit.

    Its id comes back from RETURNING (the whole row, or the key with the status among the values
    inserted, worked out only when needed); the status it was inserted with stands for its
    status when the unit of work began. Failing those, it is found by its Stripe id at commit.
    """
    for row in rows:
        subscription = _entity(row, Subscription)
        subscription_id: int | None
        status: SubscriptionStatus | str | None
        if subscription is not None:
            subscription_id, status = subscription.id, subscription.status
        else:
            subscription_id, status = getattr(row, "id", None), inserted_values().get("status")
        if subscription_id is not None and status is not None:
            unit.subscriptions.add(subscription_id)
            unit.old_statuses[subscription_id] = SubscriptionStatus(status)
        elif inserted_values().get("stripe_subscription_id"):
            unit.inserted_subscriptions.add(inserted_values()["stripe_subscription_id"])
        else:
            unit.is_stale = True


def _entity(row: Any, cls: type[EntityT]) -> EntityT | None:
    """The ORM object a row of RETURNING carries, if it carries one."""
    if isinstance(row, cls):
        return row
    if isinstance(row, sa.Row) and len(row) == 1 and isinstance(row[0], cls):
        return row[0]
    return None


def _invoke(state: Any) -> tuple[Any, Sequence[Any]]:
    """Run an INSERT ... ON CONFLICT DO NOTHING; return its result and the rows it wrote.

    With RETURNING (``insert_ignoring_conflicts`` asks for the key, ``insert_returning`` for
    the whole row), the rows say it: they are read here and replayed to the caller. Without,
    ``rowcount`` says whether a row was written, except on PostgreSQL where SQLAlchemy's own
    RETURNING of the key makes it -1 and the key itself answers; the rows are then ``(key,)``.
    """
    result = state.invoke_statement()
    # An ORM RETURNING of entities gives a plain Result: it returns rows by construction.
    if not isinstance(result, sa.CursorResult) or result.returns_rows:
        frozen = result.freeze()
        return frozen(), list(frozen.data)
    if result.rowcount >= 0:
        return result, [()] * result.rowcount
    key = result.inserted_primary_key
    return result, [] if key is None else [key]


def _before_commit(session: Session) -> None:
    session.flush()  # so that the whole unit of work is counted before the deltas are written
    unit = session.info.get(_INFO_KEY)
    if unit is None:
        return
    _observe_unit(session, unit)
    if unit.deltas:
        unit.deltas.write(session.connection())
    if unit.is_stale:
        log.warning(
            "Payments or subscriptions were written in bulk; the staff reports are out of date "
            "until `flask --app supporters staff rebuild-rollups` runs."
        )


def _forget(session: Session, *args: Any) -> None:
    session.info.pop(_INFO_KEY, None)


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # The deltas of a savepoint were written inside it and went with it; the subscriptions it
    # touched are observed at commit as the database then has them, so nothing to undo here.
    if not previous_transaction.nested:
        _forget(session)


_LISTENERS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("before_flush", _before_flush),
    ("after_flush", _after_flush),
    ("do_orm_execute", _on_execute),
    ("before_commit", _before_commit),
    ("after_commit", _forget),
    ("after_soft_rollback", _after_soft_rollback),
)


def install() -> None:
    """Register the listeners on the application's session (idempotent)."""
    for name, listener in _LISTENERS:
        if not sa.event.contains(db.session, name, listener):
            sa.event.listen(db.session, name, listener)


# -- rebuild -------------------------------------------------------------------------------------


@dataclasses.dataclass
class RebuildReport:
    """What a rebuild found: subscriptions first recorded now, and drift it corrected."""

    subscriptions_checked: int = 0
    backfilled: int = 0  # subscriptions the ledger had never seen
    corrected: int = 0  # subscriptions whose row and ledger disagreed
    ended: int = 0  # ledger contributions of subscriptions that no longer exist
    movements_added: int = 0


def _month_sql(connection: sa.Connection, column: Any) -> Any:
    if connection.dialect.name == "postgresql":
        column = sa.func.timezone("UTC", column)
    return sa.cast(sa.extract("year", column) * 12 + sa.extract("month", column) - 1, sa.Integer)


def _latest_failed(connection: sa.Connection, subscription_ids: Sequence[int]) -> set[int]:
    """Of these subscriptions, those whose latest payment failed."""
    ranked = (
        sa.select(
            _payments.c.subscription_id,
            _payments.c.status,
            sa.func.row_number()
            .over(
                partition_by=_payments.c.subscription_id,
                order_by=(_payments.c.created_at.desc(), _payments.c.id.desc()),
            )
            .label("rank"),
        )
        .where(_payments.c.subscription_id.in_(subscription_ids))
        .subquery()
    )
    return set(
        connection.scalars(
            sa.select(ranked.c.subscription_id).where(
                ranked.c.rank == 1, ranked.c.status == PaymentStatus.FAILED
            )
        )
    )


def _fixed_churn(kind: MovementKind) -> Callable[[], MovementKind]:
    return lambda: kind


def _catch_up(connection: sa.Connection, at: dt.datetime, chunk: int) -> RebuildReport:
    """Bring the ledger in line with every subscription row, a chunk of members at a time."""
    report = RebuildReport()
    after = 0
    while True:
        member_ids = list(
            connection.scalars(
                sa.select(_subscriptions.c.member_id)
                .where(_subscriptions.c.member_id > after)
                .group_by(_subscriptions.c.member_id)
                .order_by(_subscriptions.c.member_id)
                .limit(chunk)
            )
        )
        if not member_ids:
            break
        low, high = member_ids[0], member_ids[-1]
        after = high
        rows = _subscription_facts(connection, _subscriptions.c.member_id.between(low, high))
        ids = [facts.id for facts in rows]
        entries = _entries(
            connection,
            sa.or_(
                _movements.c.member_id.between(low, high), _movements.c.subscription_id.in_(ids)
            ),
        )
        by_member: dict[int, list[Entry]] = defaultdict(list)
        by_subscription: dict[int, list[Entry]] = defaultdict(list)
        for entry in entries:
            by_member[entry.member_id].append(entry)
            by_subscription[entry.subscription_id].append(entry)
        ended_ids = [f.id for f in rows if f.status not in COUNTED_STATUSES]
        failed = _latest_failed(connection, ended_ids) if ended_ids else set()
        added: list[Entry] = []
        for member_id, group in itertools.groupby(rows, key=lambda f: f.member_id):
            subscriptions = list(group)
            # The member's own rows, and rows of their subscriptions kept under another member.
            book = Book(by_member[member_id])
            for facts in subscriptions:
                book.entries.extend(
                    e for e in by_subscription[facts.id] if e.member_id != member_id
                )
            for facts in subscriptions:
                report.subscriptions_checked += 1
                was_seen = book.is_seen(facts.id)
                new = observe(
                    book,
                    facts.id,
                    facts,
                    at=at,
                    churn_kind=_fixed_churn(
                        MovementKind.FAILED_CHURN
                        if facts.id in failed
                        else MovementKind.VOLUNTARY_CHURN
                    ),
                )
                if new:
                    report.backfilled += not was_seen
                    report.corrected += was_seen
                    added.extend(new)
        _insert_entries(connection, added)
        report.movements_added += len(added)

    orphans = connection.scalars(
        sa.select(_movements.c.subscription_id)
        .where(_movements.c.subscription_id.not_in(sa.select(_subscriptions.c.id)))
        .group_by(_movements.c.subscription_id)
        .having(sa.func.sum(_movements.c.subscriptions) != 0)
    ).all()
    for subscription_id in orphans:
        new = _observe_one(connection, subscription_id, None, None, at)
        report.ended += 1
        report.movements_added += len(new)
    return report


def _recompute(connection: sa.Connection) -> None:
    """Replace every rollup with sums over the ledger and the payments table."""
    for table in ROLLUP_TABLES:
        connection.execute(sa.delete(table))
    m = _movements.c
    counted = m.kind != MovementKind.OBSERVED
    connection.execute(
        sa.insert(SubscriptionMonth.__table__).from_select(  # type: ignore[arg-type]
            ["month", "currency", "tier_key", "kind", "mrr", "subscriptions", "patrons"],
            sa.select(
                m.month,
                m.currency,
                m.tier_key,
                m.kind,
                sa.func.sum(m.mrr),
                sa.func.sum(m.subscriptions),
                sa.func.sum(m.patrons),
            )
            .where(counted)
            .group_by(m.month, m.currency, m.tier_key, m.kind),
        )
    )
    connection.execute(
        sa.insert(DayTotal.__table__).from_select(  # type: ignore[arg-type]
            ["day", "currency", "mrr", "patrons"],
            sa.select(m.day, m.currency, sa.func.sum(m.mrr), sa.func.sum(m.patrons))
            .where(counted)
            .group_by(m.day, m.currency),
        )
    )
    for offset in COHORT_OFFSETS:
        connection.execute(
            sa.insert(CohortCell.__table__).from_select(  # type: ignore[arg-type]
                ["cohort_month", "months_after", "patrons"],
                sa.select(m.cohort_month, sa.literal(offset), sa.func.sum(m.patrons))
                .where(m.patrons != 0, m.month <= m.cohort_month + offset)
                .group_by(m.cohort_month),
            )
        )

    p = _payments.c
    zero = sa.literal(0)
    paid = p.status == PaymentStatus.PAID
    parts = [
        sa.select(
            _month_sql(connection, sa.func.coalesce(p.paid_at, p.created_at)).label("month"),
            p.currency,
            p.kind,
            sa.literal(1).label("paid_count"),
            p.amount.label("paid_amount"),
            p.refunded_amount.label("refunded_amount"),
            p.disputed_amount.label("disputed_amount"),
            zero.label("failed_count"),
            zero.label("failed_amount"),
            zero.label("recovered_count"),
            zero.label("recovered_amount"),
        ).where(paid),
        sa.select(
            _month_sql(connection, p.failed_at),
            p.currency,
            p.kind,
            zero,
            zero,
            zero,
            zero,
            zero,
            zero,
            sa.literal(1),
            p.amount,
        ).where(paid, p.failed_at.is_not(None)),
        sa.select(
            _month_sql(connection, sa.func.coalesce(p.failed_at, p.created_at)),
            p.currency,
            p.kind,
            zero,
            zero,
            zero,
            zero,
            sa.literal(1),
            p.amount,
            zero,
            zero,
        ).where(~paid, sa.or_(p.status == PaymentStatus.FAILED, p.failed_at.is_not(None))),
    ]
    cells = sa.union_all(*parts).subquery()
    sums = [sa.func.sum(cells.c[name]) for name in list(cells.c.keys())[3:]]
    connection.execute(
        sa.insert(PaymentMonth.__table__).from_select(  # type: ignore[arg-type]
            list(cells.c.keys()),
            sa.select(cells.c.month, cells.c.currency, cells.c.kind, *sums).group_by(
                cells.c.month, cells.c.currency, cells.c.kind
            ),
        )
    )


def rebuild(*, at: dt.datetime | None = None, chunk: int = 2_000) -> RebuildReport:
    """Catch the ledger up with every subscription row, then recompute every rollup.

    Subscriptions the ledger has never seen (rows written in bulk, or before the reports
    existed) are recorded by the first-sight rule of :func:`observe`; rows that disagree with
    the ledger get a correcting movement dated ``at``. Flushes; the caller commits. On
    PostgreSQL the report tables are locked until then, so that units of work running
    meanwhile wait rather than count twice.
    """
    session = db.session()
    session.flush()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        names = ", ".join(t.name for t in (_movements, *ROLLUP_TABLES))
        connection.execute(sa.text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
    report = _catch_up(connection, at or now(), chunk)
    _recompute(connection)
    session.info[_INFO_KEY] = _Unit()  # everything so far is counted by the recomputation
    return report


def snapshot() -> dict[str, set[tuple[Any, ...]]]:
    """Every rollup row with a non-zero value (for tests and for checking a rebuild)."""
    connection = db.session.connection()
    result: dict[str, set[tuple[Any, ...]]] = {}
    for table in ROLLUP_TABLES:
        pk = [c.name for c in table.primary_key]
        values = [c for c in table.columns if c.name not in pk]
        rows = connection.execute(sa.select(table).where(sa.or_(*(c != 0 for c in values))))
        result[table.name] = {tuple(row) for row in rows}
    return result
