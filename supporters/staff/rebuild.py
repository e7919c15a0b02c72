"""The rebuild: catch the report ledger up with every subscription, then recompute the rollups.

The listeners (:mod:`supporters.staff.listeners`) keep the report tables exact for every write
they can follow. Bulk writes (``seed-demo``'s many rows per statement, hand-made changes, an
import) they cannot: ``flask staff rebuild-rollups`` runs :func:`rebuild` after them. It is
safe at any time: what the ledger already says is not appended again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import PaymentStatus
from supporters.extensions import db
from supporters.staff import listeners, rollups
from supporters.staff.ledger import Book, Entry, observe
from supporters.staff.models import (
    COHORT_OFFSETS,
    CohortCell,
    DayTotal,
    MovementKind,
    PaymentMonth,
    SubscriptionMonth,
)
from supporters.staff.rollups import MOVEMENTS, PAYMENTS, SUBSCRIPTIONS


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
            PAYMENTS.c.subscription_id,
            PAYMENTS.c.status,
            sa.func.row_number()
            .over(
                partition_by=PAYMENTS.c.subscription_id,
                order_by=(PAYMENTS.c.created_at.desc(), PAYMENTS.c.id.desc()),
            )
            .label("rank"),
        )
        .where(PAYMENTS.c.subscription_id.in_(subscription_ids))
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
                sa.select(SUBSCRIPTIONS.c.member_id)
                .where(SUBSCRIPTIONS.c.member_id > after)
                .group_by(SUBSCRIPTIONS.c.member_id)
                .order_by(SUBSCRIPTIONS.c.member_id)
                .limit(chunk)
            )
        )
        if not member_ids:
            break
        low, high = member_ids[0], member_ids[-1]
        after = high
        rows = rollups.subscription_facts(connection, SUBSCRIPTIONS.c.member_id.between(low, high))
        ids = [facts.id for facts in rows]
        entries = rollups.ledger_entries(
            connection,
            sa.or_(MOVEMENTS.c.member_id.between(low, high), MOVEMENTS.c.subscription_id.in_(ids)),
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
        rollups.insert_entries(connection, added)
        report.movements_added += len(added)

    orphans = connection.scalars(
        sa.select(MOVEMENTS.c.subscription_id)
        .where(MOVEMENTS.c.subscription_id.not_in(sa.select(SUBSCRIPTIONS.c.id)))
        .group_by(MOVEMENTS.c.subscription_id)
        .having(sa.func.sum(MOVEMENTS.c.subscriptions) != 0)
    ).all()
    for subscription_id in orphans:
        new = rollups.observe_one(connection, subscription_id, None, None, at)
        report.ended += 1
        report.movements_added += len(new)
    return report


def _recompute(connection: sa.Connection) -> None:
    """Replace every rollup with sums over the ledger and the payments table."""
    for table in rollups.ROLLUP_TABLES:
        connection.execute(sa.delete(table))
    m = MOVEMENTS.c
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

    p = PAYMENTS.c
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
    existed) are recorded by the first-sight rule of :func:`~supporters.staff.ledger.observe`;
    rows that disagree with the ledger get a correcting movement dated ``at``. Flushes; the
    caller commits. On PostgreSQL the report tables are locked until then, so that units of
    work running meanwhile wait rather than count twice.
    """
    session = db.session()
    session.flush()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        names = ", ".join(t.name for t in (MOVEMENTS, *rollups.ROLLUP_TABLES))
        connection.execute(sa.text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
    report = _catch_up(connection, at or rollups.now(), chunk)
    _recompute(connection)
    listeners.mark_counted(session)  # everything so far is counted by the recomputation
    return report
