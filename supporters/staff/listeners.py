"""Session listeners: every payment and subscription write also updates the report tables.

They are installed on the session by ``create_app`` (:func:`install`), so any unit of work
that writes a payment or a subscription, through a view, a webhook, a job or a command, also
updates the staff report ledger and rollups, in the same transaction: one commits with the
other or neither does. The rules are in :mod:`supporters.staff.ledger`; the reads and writes
in :mod:`supporters.staff.rollups`.

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

The rollup deltas are written at ``before_commit`` (inside a SAVEPOINT, at once). Bulk writes
(many rows per statement, as ``seed-demo`` does) and Core UPDATE/DELETE statements on payments
or subscriptions cannot be followed row by row: they mark the unit of work stale and a warning
is logged at commit unless :func:`supporters.staff.rebuild.rebuild` ran in it (``seed-demo``
does).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction

from supporters.billing.models import Payment, Subscription, SubscriptionStatus
from supporters.members.models import Member
from supporters.staff import rollups
from supporters.staff.ledger import PAYMENT_COLUMNS, SUBSCRIPTION_COLUMNS, PaymentFacts
from supporters.staff.rollups import MOVEMENTS, PAYMENTS, SUBSCRIPTIONS

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

log = logging.getLogger(__name__)

EntityT = TypeVar("EntityT", Payment, Subscription)

_INFO_KEY = "staff_rollups"


@dataclasses.dataclass
class _Unit:
    """What the listeners remember about the current unit of work (in ``session.info``)."""

    deltas: rollups.Deltas = dataclasses.field(default_factory=rollups.Deltas)
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
            rollups.payment_facts(connection, rollups.PAYMENTS_BY_ID, {"ids": list(payments)})
        )
    first_seen = subscriptions - unit.subscriptions
    if first_seen and connection is not None:
        rows = connection.execute(
            sa.select(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.status).where(
                SUBSCRIPTIONS.c.id.in_(first_seen)
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
    deltas = rollups.Deltas()
    changed = (new_payments | set(unit.old_payments)) - unit.deleted_payments
    current = (
        rollups.payment_facts(connection, rollups.PAYMENTS_BY_ID, {"ids": list(changed)})
        if changed
        else {}
    )
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
                sa.select(SUBSCRIPTIONS.c.id).where(
                    SUBSCRIPTIONS.c.stripe_subscription_id.in_(unit.inserted_subscriptions)
                )
            )
        )
    if unit.deleted_members:  # the database cascaded their subscriptions away
        ids |= set(
            connection.scalars(
                sa.select(MOVEMENTS.c.subscription_id)
                .where(MOVEMENTS.c.member_id.in_(unit.deleted_members))
                .group_by(MOVEMENTS.c.subscription_id)
                .having(sa.func.sum(MOVEMENTS.c.subscriptions) != 0)
            )
        )
    rows = rollups.subscription_facts(connection, rollups.SUBSCRIPTIONS_BY_ID, {"ids": sorted(ids)})
    facts = {f.id: f for f in rows}
    at = rollups.now()
    for subscription_id in sorted(ids):
        row = facts.get(subscription_id)
        old = unit.old_statuses.get(subscription_id, row.status if row else None)
        unit.deltas.add_entries(rollups.observe_one(connection, subscription_id, row, old, at))
    unit.subscriptions.clear()
    unit.old_statuses.clear()
    unit.inserted_subscriptions.clear()
    unit.deleted_members.clear()


def _keep(session: Session, unit: _Unit, deltas: rollups.Deltas) -> None:
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
    if name not in (PAYMENTS.name, SUBSCRIPTIONS.name):
        return None
    table = PAYMENTS if name == PAYMENTS.name else SUBSCRIPTIONS
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

    if table is SUBSCRIPTIONS:
        _note_inserted_subscription(unit, inserted_values, rows)
        return result
    # The row came back whole (``insert_returning``): what it adds is known without a read.
    written = [p for p in (_entity(row, Payment) for row in rows) if p is not None]
    deltas = rollups.Deltas()
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
        for facts in rollups.payment_facts(connection, PAYMENTS.c[key] == values[key]).values():
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


LISTENERS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("before_flush", _before_flush),
    ("after_flush", _after_flush),
    ("do_orm_execute", _on_execute),
    ("before_commit", _before_commit),
    ("after_commit", _forget),
    ("after_soft_rollback", _after_soft_rollback),
)


def install(db: SQLAlchemy) -> None:
    """Register the listeners on the extension's session; ``create_app`` calls it.

    Idempotent: every app shares the one ``db`` and its session, and each app installs.
    """
    for name, listener in LISTENERS:
        if not sa.event.contains(db.session, name, listener):
            sa.event.listen(db.session, name, listener)


def mark_counted(session: Session) -> None:
    """Forget what the unit of work wrote so far: a rebuild has just counted all of it."""
    session.info[_INFO_KEY] = _Unit()
