"""Report rollups in the database: the ledger's rows, and the sums the staff reports read.

The staff reports never scan payments or subscriptions: they read small tables of sums
(:mod:`supporters.staff.models`) kept exact in the same transaction as the billing change that
moves them. The work is split by role:

* :mod:`supporters.staff.ledger`: the rules, as plain values (what a row contributes);
* this module: reading rows and the ledger, appending to the ledger, adding to the rollups;
* :mod:`supporters.staff.listeners`: the session listeners, installed by ``create_app``, that
  follow every payment and subscription write and update the report tables with it;
* :mod:`supporters.staff.rebuild`: the catch-up and recomputation behind ``flask staff
  rebuild-rollups``, for bulk writes the listeners cannot follow.

The rollup deltas of a unit of work are added up in memory (:class:`Deltas`) and written at
``before_commit`` as upserts in primary-key order: the rollup rows are locked last and briefly,
and always in the same order, so concurrent units of work cannot deadlock on them. Inside a
SAVEPOINT they are written at once (so that a rolled-back savepoint takes them with it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from supporters.billing.models import Payment, PaymentStatus, Subscription, SubscriptionStatus
from supporters.db import utcnow
from supporters.extensions import db
from supporters.staff.ledger import (
    FAILED_STATUSES,
    PAYMENT_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    Book,
    Entry,
    PaymentFacts,
    SubscriptionFacts,
    entry_cells,
    observe,
    payment_cells,
)
from supporters.staff.models import (
    CohortCell,
    DayTotal,
    Movement,
    MovementKind,
    PaymentMonth,
    SubscriptionMonth,
)

# The tables the ledger reads and writes, as Core tables: the listeners and the rebuild work
# below the ORM.
PAYMENTS = cast(sa.Table, Payment.__table__)
SUBSCRIPTIONS = cast(sa.Table, Subscription.__table__)
MOVEMENTS = cast(sa.Table, Movement.__table__)

ROLLUP_TABLES: tuple[sa.Table, ...] = tuple(
    model.__table__  # type: ignore[misc]
    for model in (SubscriptionMonth, DayTotal, CohortCell, PaymentMonth)
)


def now() -> dt.datetime:
    """The clock that dates changes without a date of their own (tests replace it)."""
    return utcnow()


# -- deltas: added up per unit of work, written as ordered upserts ------------------------------


class Deltas:
    """Rollup increments keyed by (table name, primary key)."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, tuple[Any, ...]], Counter[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def add(
        self, table: str, key: tuple[Any, ...], values: Mapping[str, int], sign: int = 1
    ) -> None:
        cell = self.cells.setdefault((table, key), Counter())
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
            self.add(PaymentMonth.__tablename__, key, values, sign)

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


def payment_facts(
    connection: sa.Connection, where: Any, params: Mapping[str, Any] | None = None
) -> dict[int, PaymentFacts]:
    """The facts of the payments ``where`` selects (or of a prebuilt query, with ``params``)."""
    statement = where if isinstance(where, sa.Select) else _payment_facts_select(where)
    rows = connection.execute(statement, params or {})
    return {row.id: PaymentFacts(*row[1:]) for row in rows}


def _payment_facts_select(where: Any) -> sa.Select[Any]:
    columns = [PAYMENTS.c[name] for name in PAYMENT_COLUMNS]
    return sa.select(PAYMENTS.c.id, *columns).where(where)


def subscription_facts(
    connection: sa.Connection, where: Any, params: Mapping[str, Any] | None = None
) -> list[SubscriptionFacts]:
    """The facts of the subscriptions ``where`` selects (or of a prebuilt query), by member."""
    statement = where if isinstance(where, sa.Select) else _subscription_facts_select(where)
    return [SubscriptionFacts(*row) for row in connection.execute(statement, params or {})]


def _subscription_facts_select(where: Any) -> sa.Select[Any]:
    columns = [SUBSCRIPTIONS.c[name] for name in SUBSCRIPTION_COLUMNS]
    return (
        sa.select(SUBSCRIPTIONS.c.id, *columns)
        .where(where)
        .order_by(
            SUBSCRIPTIONS.c.member_id,
            SUBSCRIPTIONS.c.started_at.asc().nulls_last(),
            SUBSCRIPTIONS.c.id,
        )
    )


def ledger_entries(
    connection: sa.Connection, where: Any, params: Mapping[str, Any] | None = None
) -> list[Entry]:
    """The ledger rows ``where`` selects (or a prebuilt query does), oldest first."""
    statement = where if isinstance(where, sa.Select) else _entries_select(where)
    return [Entry(*row) for row in connection.execute(statement, params or {})]


def _entries_select(where: Any) -> sa.Select[Any]:
    names = [f.name for f in dataclasses.fields(Entry)]
    return sa.select(*(MOVEMENTS.c[n] for n in names)).where(where).order_by(MOVEMENTS.c.id)


# The reads every billing change makes, built once: building a statement (and its cache key)
# costs SQLAlchemy more than running it.
_IDS: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
PAYMENTS_BY_ID = _payment_facts_select(PAYMENTS.c.id.in_(_IDS))
SUBSCRIPTIONS_BY_ID = _subscription_facts_select(SUBSCRIPTIONS.c.id.in_(_IDS))
_OWN_ENTRIES = MOVEMENTS.c.subscription_id == sa.bindparam("subscription_id")
_ENTRIES_OF_SUBSCRIPTION = _entries_select(_OWN_ENTRIES)
_ENTRIES_OF_SUBSCRIPTION_OR_MEMBER = _entries_select(
    sa.or_(_OWN_ENTRIES, MOVEMENTS.c.member_id == sa.bindparam("member_id"))
)
_ENTRIES_OF_MEMBERS = _entries_select(
    MOVEMENTS.c.member_id.in_(sa.bindparam("members", expanding=True))
)
_INSERT_ENTRIES = sa.insert(MOVEMENTS)


def insert_entries(connection: sa.Connection, entries: Sequence[Entry]) -> None:
    """Append rows to the ledger, stamped with when they were recorded."""
    if entries:
        recorded_at = utcnow()
        connection.execute(_INSERT_ENTRIES, [e.values(recorded_at) for e in entries])


def _latest_payment_failed(connection: sa.Connection, subscription_id: int) -> bool:
    status = connection.scalar(
        sa.select(PAYMENTS.c.status)
        .where(PAYMENTS.c.subscription_id == subscription_id)
        .order_by(PAYMENTS.c.created_at.desc(), PAYMENTS.c.id.desc())
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


def observe_one(
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
        entries = ledger_entries(
            connection, _ENTRIES_OF_SUBSCRIPTION, {"subscription_id": subscription_id}
        )
    else:
        entries = ledger_entries(
            connection,
            _ENTRIES_OF_SUBSCRIPTION_OR_MEMBER,
            {"subscription_id": subscription_id, "member_id": facts.member_id},
        )
    members = {e.member_id for e in entries if e.subscription_id == subscription_id}
    members |= {facts.member_id} if facts else set()
    if members and (facts is None or members != {facts.member_id}):
        entries = ledger_entries(connection, _ENTRIES_OF_MEMBERS, {"members": sorted(members)})
    book = Book(entries)
    new = observe(
        book,
        subscription_id,
        facts,
        at=at,
        churn_kind=_churn_kind(connection, subscription_id, old_status),
    )
    insert_entries(connection, new)
    return new


# -- for checks ---------------------------------------------------------------------------------


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
