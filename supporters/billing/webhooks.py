"""Stripe webhooks: verify, record once, answer at once; a worker processes by re-fetching.

``POST /stripe/webhook`` verifies the signature on the raw body, then records the event by its
unique Stripe id and queues its job (``billing.stripe_event``) in one short transaction, and
answers 200 with no call to Stripe: a storm of renewals costs the web processes two INSERTs per
event. A delivery of an event already recorded is answered 200 and does nothing, even when two
deliveries race (the unique index decides). Events of a type we do not handle, and events that
name no object, need no work: they are recorded as ignored, with the reason, and get no job.

The job (run by a worker, see :mod:`supporters.jobs`) locks the event's row and runs its
handler. Handlers never trust the payload's snapshot: they fetch the subscription, invoice,
charge or dispute from Stripe and upsert what it says now, so the order in which events arrive
does not matter: an invoice brings its subscription first, and a refund or a dispute whose
payment is not recorded yet brings that payment first. The row is marked processed in the
job's transaction, so a job run twice processes the event once.

Stripe sends every event of the account. One about a customer, a Checkout Session or a product
this installation did not make is recorded as ignored with the reason (``errors.Ignored``): no
retry could change it. Any other failure is kept on the event (``error``, ``attempts``) and the
job is retried with backoff; after its last attempt it is dead, and the staff's background-work
page shows it with a retry button. ``flask billing replay-events`` processes what is left
unprocessed in its own process, or queues it for the workers.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, jsonify, request

from supporters import audit, jobs
from supporters.billing import checkout, disputes, errors, payments, subscriptions
from supporters.billing import stripe_gateway as gateway
from supporters.billing.models import StripeEvent
from supporters.billing.provider import InvoiceInfo
from supporters.db import insert_ignoring_conflicts, utcnow
from supporters.extensions import db
from supporters.jobs.models import Job, JobState

log = logging.getLogger(__name__)


#: The job that processes one recorded event; its payload names the event.
EVENT_JOB = "billing.stripe_event"


class Outcome(enum.StrEnum):
    QUEUED = "queued"  # recorded with its job: a worker processes it
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    # Recorded, answered 200, not acted on: a type we do not handle, or an event of a handled
    # type that is not ours or cannot be (its reason is kept on the row).
    IGNORED = "ignored"
    FAILED = "failed"  # the error is stored on the event; its job tries again


def event_job_key(stripe_event_id: str) -> str:
    """The key of an event's job: one job per event, however often it is delivered."""
    return f"stripe-event:{stripe_event_id}"


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


def _unusable(event: gateway.EventInfo) -> str | None:
    """Why no work can come of an event, known without asking Stripe; None when some may."""
    if event.type not in HANDLERS:
        return ""  # not a type we act on: recorded, with no reason to give
    if not event.object_id:
        return f"the event names no {event.object_type or 'object'}"
    return None


def record(event: gateway.EventInfo) -> Outcome:
    """Record a verified event and queue its job, committing both; no call to Stripe."""
    now = utcnow()
    reason = _unusable(event)
    if reason is not None and not db.session().in_transaction():
        # Nothing to do but keep it: one statement, which commits by itself (no BEGIN and no
        # COMMIT round trip), on a connection of its own. A duplicate inserts nothing.
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            inserted = _insert(
                event, connection, processed_at=now, attempts=1, ignored_reason=reason
            )
        if inserted and reason:
            log.info("Stripe event %s (%s) ignored: %s", event.id, event.type, reason)
        return Outcome.IGNORED if inserted else Outcome.DUPLICATE
    if reason is not None:
        inserted = _insert(event, processed_at=now, attempts=1, ignored_reason=reason)
        db.session.commit()
        return Outcome.IGNORED if inserted else Outcome.DUPLICATE
    # The event and its job, in one transaction: a concurrent delivery of the same id waits on
    # the unique index, then finds it recorded and inserts nothing.
    if not _insert(event):
        db.session.rollback()
        return Outcome.DUPLICATE
    jobs.enqueue(EVENT_JOB, {"event": event.id}, key=event_job_key(event.id))
    db.session.commit()
    return Outcome.QUEUED


def _locked_row(stripe_event_id: str) -> StripeEvent | None:
    # A replay and a worker (or two workers) wait here for each other; the second finds it done.
    return db.session.scalars(
        sa.select(StripeEvent)
        .where(StripeEvent.stripe_event_id == stripe_event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def process(stripe_event_id: str) -> Outcome:
    """Process a recorded event in the current transaction, marking it processed; flushes.

    An event processed already changes nothing (``DUPLICATE``): a job may run twice.

    :raises Exception: the handler failed in a way a retry may fix (Stripe unreachable, a
        conflict); nothing it did may be kept: the caller rolls back.
    """
    row = _locked_row(stripe_event_id)
    if row is None or row.processed_at is not None:
        return Outcome.DUPLICATE
    event = event_from_row(row)
    row.attempts += 1
    # Written before the savepoint: on SQLite it opens the transaction, so the savepoint is
    # one inside it (pysqlite begins a transaction only before a write).
    db.session.flush()
    outcome = Outcome.PROCESSED
    handler = HANDLERS.get(event.type)
    try:
        with db.session.begin_nested():
            if handler is not None:
                handler(event)
    except errors.Ignored as exc:
        # Not ours, or unusable: a retry would not help. Nothing the handler did is kept.
        log.info("Stripe event %s (%s) ignored: %s", event.id, event.type, exc)
        row.ignored_reason = str(exc)[:500]
        outcome = Outcome.IGNORED
    else:
        row.ignored_reason = ""
        log.info("Stripe event %s (%s) processed", event.id, event.type)
    row.processed_at = utcnow()
    row.error = ""
    db.session.flush()
    return outcome


def run_event_job(payload: dict[str, Any]) -> None:
    """The job of one recorded event."""
    process(str(payload["event"]))


def store_job_failure(payload: dict[str, Any], error: str, is_dead: bool) -> None:
    """Keep a failed attempt's error on its event (the attempt counts), beside the job's."""
    stripe_event_id = str(payload["event"])
    log.warning(
        "Stripe event %s failed%s: %s",
        stripe_event_id,
        " for the last time" if is_dead else "; its job tries again",
        error,
    )
    _store_error(stripe_event_id, error)


def _store_error(stripe_event_id: str, error: str) -> None:
    db.session.execute(
        sa.update(StripeEvent)
        .where(StripeEvent.stripe_event_id == stripe_event_id, StripeEvent.processed_at.is_(None))
        .values(attempts=StripeEvent.attempts + 1, error=error[:2000])
        .execution_options(synchronize_session=False)
    )


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


def _unprocessed(limit: int) -> list[str]:
    ids = db.session.scalars(
        sa.select(StripeEvent.stripe_event_id)
        .where(StripeEvent.processed_at.is_(None))
        .order_by(StripeEvent.received_at, StripeEvent.id)
        .limit(limit)
    ).all()
    db.session.commit()
    return list(ids)


def replay_failed(limit: int = 1000) -> dict[Outcome, int]:
    """Process every unprocessed event here and now (oldest first), each committed on its own."""
    counts: dict[Outcome, int] = {}
    for event_id in _unprocessed(limit):
        try:
            outcome = process(event_id)
            db.session.commit()
        except Exception as exc:  # noqa: BLE001 - stored on the event, as a worker would
            db.session.rollback()
            log.exception("Stripe event %s failed on replay", event_id)
            _store_error(event_id, f"{type(exc).__name__}: {exc}")
            db.session.commit()
            outcome = Outcome.FAILED
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def queue_unprocessed(
    actor: audit.Actor,
    limit: int = 1000,
    *,
    dead_only: bool = False,
    received_since: dt.datetime | None = None,
) -> int:
    """Queue unprocessed events for the workers: a failed or dead job is retried (only a dead
    one with ``dead_only``), and an event with no job (recorded before jobs did this) gets
    one. Flushes (the caller commits); how many jobs were queued."""
    states = (JobState.DEAD,) if dead_only else (JobState.FAILED, JobState.DEAD)
    query = (
        sa.select(StripeEvent.stripe_event_id, Job.id)
        .outerjoin(Job, Job.key == sa.literal(event_job_key("")) + StripeEvent.stripe_event_id)
        .where(StripeEvent.processed_at.is_(None), sa.or_(Job.id.is_(None), Job.state.in_(states)))
        .order_by(StripeEvent.received_at, StripeEvent.id)
        .limit(limit)
    )
    if received_since is not None:
        query = query.where(StripeEvent.received_at >= received_since)
    found = db.session.execute(query).all()
    queued = 0
    for event_id, job_id in found:
        if job_id is None:
            job = jobs.enqueue(EVENT_JOB, {"event": event_id}, key=event_job_key(event_id))
            queued += job is not None
        else:
            try:
                jobs.retry(job_id, actor)
                queued += 1
            except jobs.NotRetryable:
                pass  # taken by a worker meanwhile
    return queued


def receive() -> tuple[Response, int]:
    """POST /stripe/webhook: verify the signature on the raw body, then record the event."""
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
    outcome = record(event)
    return jsonify(received=True, outcome=outcome.value), 200
