"""Disputes: a cardholder's bank takes a payment back, for a while or for good.

Stripe withdraws the disputed amount (and its fee) when a chargeback opens, gives the amount
back if the newsroom wins, and keeps it if it loses; an inquiry withdraws nothing unless it
becomes a chargeback. ``record_dispute`` mirrors what Stripe says about a dispute now, and keeps
its payment's ``disputed_amount`` equal to what its disputes hold back, so that the payment
rollups (pure functions of each payment row) count it as they count refunds. Services flush;
the caller commits.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from supporters.billing.errors import UnknownCharge
from supporters.billing.models import Dispute, DisputeStatus, Payment
from supporters.billing.provider import DisputeInfo
from supporters.db import assign_changed, utcnow
from supporters.extensions import db

log = logging.getLogger(__name__)


def record_dispute(info: DisputeInfo) -> Dispute:
    """Upsert a dispute from what Stripe says now, and what it withholds from its payment.

    Idempotent, whatever the order of the events.

    :raises UnknownCharge: the disputed charge is none of the payments recorded here (Stripe
        sends the disputes of the whole account; the webhook looks for it through Stripe).
    """
    # The payment's lock (on PostgreSQL) puts deliveries about its disputes one after another,
    # so the first one inserts the dispute and the others find it.
    conditions = [Payment.stripe_charge_id == info.charge_id]
    if info.payment_intent_id:
        conditions.append(Payment.stripe_payment_intent_id == info.payment_intent_id)
    payment = db.session.scalars(
        sa.select(Payment)
        .where(sa.or_(*conditions))
        .order_by(Payment.id)
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if payment is None:
        raise UnknownCharge(f"dispute {info.id}: charge {info.charge_id} is none of our payments")
    if info.currency != payment.currency:
        log.warning(
            "Dispute %s is in %s, its payment %s in %s: what it withdraws is not counted",
            info.id,
            info.currency,
            payment.id,
            payment.currency,
        )
    status = DisputeStatus(info.status)
    dispute = db.session.scalars(
        sa.select(Dispute).where(Dispute.stripe_dispute_id == info.id)
    ).first()
    if dispute is None:
        dispute = Dispute(stripe_dispute_id=info.id)
        db.session.add(dispute)
    closed_at = None if status.is_open else (dispute.closed_at or utcnow())
    values = {
        "payment_id": payment.id,
        "stripe_charge_id": info.charge_id,
        "amount": info.amount,
        "currency": info.currency,
        "withdrawn_amount": min(max(info.withdrawn_amount, 0), info.amount),
        "reason": info.reason[:64],
        "status": status,
        "evidence_due_at": info.evidence_due_at,
        "opened_at": info.created_at,
        "closed_at": closed_at,
    }
    assign_changed(dispute, values)
    db.session.flush()
    _count_against(payment)
    return dispute


def _count_against(payment: Payment) -> None:
    """Set what the payment's disputes withhold from it, and when the first was opened."""
    withheld, first_opened_at = db.session.execute(
        sa.select(
            sa.func.coalesce(
                sa.func.sum(Dispute.withdrawn_amount).filter(Dispute.currency == payment.currency),
                0,
            ),
            sa.func.min(Dispute.opened_at),
        ).where(Dispute.payment_id == payment.id)
    ).one()
    disputed_amount = min(int(withheld), payment.amount)
    if payment.disputed_amount != disputed_amount:
        payment.disputed_amount = disputed_amount
    if payment.disputed_at != first_opened_at:
        payment.disputed_at = first_opened_at
    db.session.flush()
