"""Stripe webhooks: verify, record once, process by re-fetching, and replay what failed.

An event is recorded by its unique Stripe id in the transaction that acts on it: a new event is
inserted already marked processed, and that insert commits with the handler's work or rolls
back with it (the failure is then stored on the row, unprocessed, for a retry or a replay). A
delivery of an event already processed is answered 200 and does nothing, even when two
deliveries race: the second waits on the unique index (or on the row's lock, for an event that
failed before) until the first has committed. Handlers never trust the payload's snapshot: they
fetch the subscription, invoice, charge or dispute from Stripe and upsert what it says now, so
the order in which events arrive does not matter: an invoice brings its subscription first, and
a refund or a dispute whose payment is not recorded yet brings that payment first.

Stripe sends every event of the account. One about a customer, a Checkout Session or a product
this installation did not make, or one that names no object, is recorded as ignored with the
reason (``errors.Ignored``) and answered 200: no retry could change it. Only failures a retry
can fix are answered 500.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, jsonify, request

from supporters.billing import checkout, disputes, errors, payments, subscriptions
from supporters.billing import stripe_gateway as gateway
from supporters.billing.models import StripeEvent
from supporters.billing.provider import InvoiceInfo
from supporters.db import insert_ignoring_conflicts, utcnow
from supporters.extensions import db

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    # Recorded, answered 200, not acted on: a type we do not handle, or an event of a handled
    # type that is not ours or cannot be (its reason is kept on the row).
    IGNORED = "ignored"
    FAILED = "failed"  # stored for a retry or a replay: answered 500


def _on_subscription(event: gateway.EventInfo) -> None:
    subscriptions.sync_subscription(gateway.retrieve_subscription(_object_id(event)))


def _on_invoice(event: gateway.EventInfo) -> None:
    _record_invoice(gateway.retrieve_invoice(_object_id(event)))


def _record_invoice(invoice: InvoiceInfo) -> None:
    # The invoice may arrive before any subscription event: bring the subscription first.
    if invoice.subscription is not None:
        subscriptions.sync_subscription(invoice.subscription)
    elif invoice.subscription_id:
        subscriptions.sync_subscription(gateway.retrieve_subscription(invoice.subscription_id))
    payments.record_invoice(invoice)


def _on_checkout_completed(event: gateway.EventInfo) -> None:
    checkout.complete_checkout(_object_id(event))


def _on_charge(event: gateway.EventInfo) -> None:
    charge = gateway.retrieve_charge(_object_id(event))
    try:
        payments.record_charge(charge)
    except errors.UnknownCharge:
        _record_payment_of(charge.id, charge.payment_intent_id)
        payments.record_charge(charge)


def _on_dispute(event: gateway.EventInfo) -> None:
    dispute = gateway.retrieve_dispute(_object_id(event))
    try:
        disputes.record_dispute(dispute)
    except errors.UnknownCharge:
        _record_payment_of(dispute.charge_id, dispute.payment_intent_id)
        disputes.record_dispute(dispute)


def _record_payment_of(charge_id: str, payment_intent_id: str | None) -> None:
    """Record the payment a charge belongs to, as Stripe has it: its invoice, or the Checkout
    Session of a gift. A refund or a dispute may arrive before its payment's own events (one
    that failed and is retried later, or is late): it must not be lost.

    :raises errors.Ignored: the charge is none of ours (another integration's, a one-off
        invoice); the reason says why.
    """
    try:
        if payment_intent_id:
            invoice_id = gateway.invoice_paid_by(payment_intent_id)
            if invoice_id is not None:
                _record_invoice(gateway.retrieve_invoice(invoice_id))
                return
            session_id = gateway.checkout_session_paid_by(payment_intent_id)
            if session_id is not None:
                checkout.complete_checkout(session_id)
                return
    except errors.Ignored as exc:
        raise errors.Ignored(f"charge {charge_id} is none of our payments: {exc}") from exc
    raise errors.Ignored(
        f"charge {charge_id} is none of our payments: it paid no invoice or Checkout Session"
    )


# invoice.payment_succeeded always comes with invoice.paid: handling both would fetch twice.
HANDLERS: dict[str, Callable[[gateway.EventInfo], None]] = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_checkout_completed,
    "customer.subscription.created": _on_subscription,
    "customer.subscription.updated": _on_subscription,
    "customer.subscription.deleted": _on_subscription,
    "customer.subscription.paused": _on_subscription,
    "customer.subscription.resumed": _on_subscription,
    "invoice.paid": _on_invoice,
    "invoice.payment_failed": _on_invoice,
    "invoice.marked_uncollectible": _on_invoice,
    "invoice.voided": _on_invoice,
    "charge.refunded": _on_charge,
    "charge.refund.updated": _on_charge,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.funds_withdrawn": _on_dispute,
    "charge.dispute.funds_reinstated": _on_dispute,
    "charge.dispute.closed": _on_dispute,
}


def _object_id(event: gateway.EventInfo) -> str:
    """:raises errors.Ignored: the event names no object (no retry can change that)."""
    if not event.object_id:
        raise errors.Ignored(f"the event names no {event.object_type or 'object'}")
    return event.object_id


@functools.cache
def _column_lengths() -> tuple[tuple[str, int], ...]:
    """The longest id, type and API version the events table holds."""
    lengths = []
    for name in ("stripe_event_id", "type", "api_version"):
        column_type = StripeEvent.__table__.c[name].type
        assert isinstance(column_type, sa.String) and column_type.length
        lengths.append((name, column_type.length))
    return tuple(lengths)


def _fits(event: gateway.EventInfo) -> bool:
    values = {"stripe_event_id": event.id, "type": event.type, "api_version": event.api_version}
    return all(len(values[name]) <= length for name, length in _column_lengths())


def _insert(
    event: gateway.EventInfo, connection: sa.Connection | None = None, **values: Any
) -> bool:
    """INSERT the event unless its id is recorded already; True when this call recorded it.

    It runs on the session's connection (or ``connection``) as a Core statement: no session
    listener has anything to do with the events table.
    """
    return insert_ignoring_conflicts(
        StripeEvent,
        {
            "stripe_event_id": event.id,
            "type": event.type,
            "api_version": event.api_version,
            "livemode": event.livemode,
            "payload": event.payload,  # secrets dropped by the gateway
            "received_at": utcnow(),
            "attempts": 0,
            "error": "",
            "ignored_reason": "",
            **values,
        },
        connection=connection or db.session.connection(),
    )


def _record(event: gateway.EventInfo) -> StripeEvent:
    _insert(event)
    # Lock the row: a concurrent delivery of the same event waits here until this one commits.
    return db.session.scalars(
        sa.select(StripeEvent)
        .where(StripeEvent.stripe_event_id == event.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _is_processed(event_id: str) -> bool:
    """One indexed read, no lock: whether an event already recorded was processed."""
    processed_at = db.session.scalar(
        sa.select(StripeEvent.processed_at).where(StripeEvent.stripe_event_id == event_id)
    )
    return processed_at is not None


def ingest(event: gateway.EventInfo) -> Outcome:
    """Record and process one verified event as one unit of work, committing its outcome."""
    handler = HANDLERS.get(event.type)
    now = utcnow()
    if handler is None and not db.session().in_transaction():
        # Nothing to do but keep it: one statement, which commits by itself (no BEGIN and no
        # COMMIT round trip), on a connection of its own. A duplicate inserts nothing.
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            inserted = _insert(event, connection, received_at=now, processed_at=now, attempts=1)
        return Outcome.IGNORED if inserted else Outcome.DUPLICATE
    # A new event is recorded as processed by one INSERT, which commits (or rolls back) with
    # the handler's work. Until then the row is this transaction's: a concurrent delivery of
    # the same id waits on the unique index, then finds it recorded.
    if _insert(event, received_at=now, processed_at=now, attempts=1):
        if handler is None:
            db.session.commit()
            return Outcome.IGNORED
        return _process(event, handler, None)
    if handler is None or _is_processed(event.id):
        db.session.rollback()
        return Outcome.DUPLICATE
    # Recorded but never processed (an earlier delivery failed): take the row's lock, look again.
    row = _record(event)
    if row.processed_at is not None:
        db.session.commit()
        return Outcome.DUPLICATE
    return _process(event, handler, row)


def _process(
    event: gateway.EventInfo,
    handler: Callable[[gateway.EventInfo], None],
    row: StripeEvent | None,
) -> Outcome:
    """Run the handler; ``row`` is the locked row of an event that failed before, else None."""
    try:
        handler(event)
    except errors.Ignored as exc:
        # Not ours, or unusable: a retry would not help. Nothing the handler did is kept.
        db.session.rollback()
        return _store_ignored(event, str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is stored and retried by Stripe
        db.session.rollback()
        _store_failure(event, exc)
        return Outcome.FAILED
    if row is not None:
        row.processed_at = utcnow()
        row.attempts += 1
        row.error = row.ignored_reason = ""
    db.session.commit()
    log.info("Stripe event %s (%s) processed", event.id, event.type)
    return Outcome.PROCESSED


def _store_ignored(event: gateway.EventInfo, reason: str) -> Outcome:
    """Record the event as processed and not acted on, with the reason, and commit."""
    log.info("Stripe event %s (%s) ignored: %s", event.id, event.type, reason)
    now = utcnow()
    reason = reason[:500]
    if _insert(event, received_at=now, processed_at=now, attempts=1, ignored_reason=reason):
        db.session.commit()
        return Outcome.IGNORED
    row = _record(event)  # recorded before: a failed delivery, replayed now
    if row.processed_at is not None:  # a concurrent delivery got there first
        db.session.commit()
        return Outcome.DUPLICATE
    row.processed_at = now
    row.attempts += 1
    row.error = ""
    row.ignored_reason = reason
    db.session.commit()
    return Outcome.IGNORED


def _store_failure(event: gateway.EventInfo, exc: Exception) -> None:
    log.exception("Stripe event %s (%s) failed", event.id, event.type, exc_info=exc)
    row = _record(event)
    row.attempts += 1
    row.error = f"{type(exc).__name__}: {exc}"[:2000]
    db.session.commit()


def event_from_row(row: StripeEvent) -> gateway.EventInfo:
    """A recorded event as verified, to process it again (a replay)."""
    obj = row.payload.get("data", {}).get("object", {})
    return gateway.EventInfo(
        id=row.stripe_event_id,
        type=row.type,
        api_version=row.api_version,
        livemode=row.livemode,
        object_id=obj.get("id"),
        object_type=obj.get("object"),
        payload=row.payload,
    )


def replay_failed(limit: int = 1000) -> dict[Outcome, int]:
    """Process again every recorded event that has not been processed (oldest first)."""
    ids = db.session.scalars(
        sa.select(StripeEvent.stripe_event_id)
        .where(StripeEvent.processed_at.is_(None))
        .order_by(StripeEvent.received_at, StripeEvent.id)
        .limit(limit)
    ).all()
    db.session.commit()
    counts: dict[Outcome, int] = {}
    for event_id in ids:
        row = db.session.scalars(
            sa.select(StripeEvent).where(StripeEvent.stripe_event_id == event_id)
        ).one()
        outcome = ingest(event_from_row(row))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def receive() -> tuple[Response, int]:
    """POST /stripe/webhook: verify the signature on the raw body, then ingest the event."""
    payload = request.get_data(cache=False)
    try:
        event = gateway.verify_event(
            payload,
            request.headers.get("Stripe-Signature"),
            current_app.config["STRIPE_WEBHOOK_SECRET"],
        )
    except gateway.SignatureError as exc:
        log.warning("Rejected a webhook: %s", exc)
        return jsonify(error="invalid signature"), 400
    if not _fits(event):
        # Signed, but no Stripe event is shaped so: refused before anything is stored.
        log.warning(
            "Rejected webhook event %.80s: its id, type or API version is too long", event.id
        )
        return jsonify(error="the event's id, type or API version is too long"), 400
    outcome = ingest(event)
    if outcome is Outcome.FAILED:
        return jsonify(received=True, outcome=outcome.value), 500
    return jsonify(received=True, outcome=outcome.value), 200
