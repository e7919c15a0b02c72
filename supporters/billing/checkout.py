"""Joining and giving: a checkout opened for the member's choice, at most one open per kind, and
what came of it, recorded whether the success page or the webhook asks first. Services flush;
the caller commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from flask_babel import gettext as _

from supporters.billing import demo_checkout as demo
from supporters.billing.backend import backend
from supporters.billing.choices import Choice, price_for
from supporters.billing.customers import ensure_customer, lock_customer, lock_member_of
from supporters.billing.errors import AlreadySupporting, BillingError, Ignored
from supporters.billing.models import CheckoutMode, CheckoutSession, CheckoutStatus
from supporters.billing.payments import record_gift, record_invoice
from supporters.billing.provider import Backend, CheckoutInfo, CheckoutRequest
from supporters.billing.subscriptions import live_subscription, sync_subscription
from supporters.db import insert_ignoring_conflicts, utcnow
from supporters.extensions import db
from supporters.members.models import Member

log = logging.getLogger(__name__)

#: Checkout defers a first charge (a trial) only to a moment at least 48 hours after the
#: session is made; the margin covers the way to Stripe and a clock a little behind.
MINIMUM_DEFERRAL = dt.timedelta(hours=48, minutes=10)
#: And by 730 days at most.
MAXIMUM_DEFERRAL = dt.timedelta(days=729)


def first_charge_date(
    requested: dt.datetime | None, now: dt.datetime | None = None
) -> dt.datetime | None:
    """When a subscription whose first charge is asked for at ``requested`` is first charged
    if its checkout opens ``now``: None (at checkout) for no date or one that has passed; else
    that date, or 48 hours from now if it is sooner (Checkout's shortest deferral), so that no
    one is charged before the date they were promised."""
    now = now or utcnow()
    if requested is None or requested <= now:
        return None
    return max(requested, now + MINIMUM_DEFERRAL)


def _already_supporting() -> AlreadySupporting:
    """The refusal of a second subscription, in the member's language."""
    return AlreadySupporting(
        _("You already support us. You can change your amount or tier instead.")
    )


def start_checkout(
    member: Member,
    choice: Choice,
    *,
    success_url: str,
    cancel_url: str,
    attempt: str,
    first_charge_at: dt.datetime | None = None,
    offer_id: int | None = None,
) -> CheckoutInfo:
    """Open a checkout for the member's choice, closing their other open one of its kind;
    ``attempt`` (the support form's) makes a double submit reuse it. A recurring choice is
    first charged at ``first_charge_at`` (see :func:`first_charge_date`); a completed checkout
    marks the offer ``offer_id`` used.

    :raises AlreadySupporting: a recurring choice while a subscription is live, found out too
        when the member's other open checkout turns out to have been completed.
    :raises BillingError: payments are not set up.
    """
    provider = backend()
    customer_id = ensure_customer(member, provider)
    lock_customer(member.id)  # a second tab's start waits for the first's
    if choice.is_recurring and live_subscription(member.id) is not None:
        raise _already_supporting()
    price_id, new_price = price_for(choice, provider)
    mode = CheckoutMode.SUBSCRIPTION if choice.is_recurring else CheckoutMode.PAYMENT
    attempt = attempt[:64]
    others = [row for row in _open_checkouts(member.id, mode) if row.attempt != attempt]
    completed = _close_checkouts(others, provider=provider)
    if completed and choice.is_recurring and live_subscription(member.id) is not None:
        raise _already_supporting()  # another tab was paid meanwhile
    # Asked again with the key of an open session, the provider gives that session back (a
    # double submit); a form whose page was closed since (another tab's) opens a new one.
    closed_before = db.session.scalar(
        sa.select(sa.func.count()).where(
            CheckoutSession.member_id == member.id,
            CheckoutSession.attempt == attempt,
            CheckoutSession.status != CheckoutStatus.OPEN,
        )
    )
    metadata = {
        "member_id": str(member.id),
        "tier": choice.tier_key,
        "interval": choice.interval.value if choice.interval else "once",
    }
    if offer_id is not None:
        metadata["offer"] = str(offer_id)
    deferred_to = first_charge_date(first_charge_at) if choice.is_recurring else None
    checkout = provider.create_checkout_session(
        CheckoutRequest(
            customer_id=customer_id,
            mode=mode.value,
            price_id=price_id,
            new_price=new_price,
            metadata=metadata,
            client_reference_id=str(member.id),
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=f"checkout-{member.id}-{attempt}-{closed_before}",
            first_charge_at=deferred_to,
        )
    )
    insert_ignoring_conflicts(
        CheckoutSession,
        {
            "member_id": member.id,
            "stripe_checkout_session_id": checkout.id,
            "stripe_customer_id": customer_id,
            "attempt": attempt,
            "mode": mode,
            "status": CheckoutStatus(checkout.status),
            "expires_at": checkout.expires_at,
            "created_at": utcnow(),
            "updated_at": utcnow(),
        },
    )
    return checkout


def _open_checkouts(member_id: int, mode: CheckoutMode) -> Sequence[CheckoutSession]:
    """The member's checkouts of ``mode`` that can still be paid."""
    return db.session.scalars(
        sa.select(CheckoutSession).where(
            CheckoutSession.member_id == member_id,
            CheckoutSession.mode == mode,
            CheckoutSession.status == CheckoutStatus.OPEN,
            sa.or_(CheckoutSession.expires_at.is_(None), CheckoutSession.expires_at > utcnow()),
        )
    ).all()


def _close_checkouts(rows: Sequence[CheckoutSession], *, provider: Backend) -> bool:
    """Expire these checkouts at the provider, recording what came of any that was completed
    meanwhile; True if one was."""
    completed = False
    for row in rows:
        closed = provider.expire_checkout_session(row.stripe_checkout_session_id)
        row.status = CheckoutStatus(closed.status)
        if row.status is CheckoutStatus.COMPLETE:
            log.info("Checkout %s had been completed before it could be closed", closed.id)
            _record_checkout(closed, provider)
            completed = True
    return completed


def complete_checkout(session_id: str, *, member_id: int | None = None) -> CheckoutInfo:
    """Ask the provider what came of a checkout and record it (the success page and the webhook).

    :raises BillingError: the session is not ``member_id``'s.
    :raises Ignored: the session was not opened here (another integration's).
    """
    provider = backend()
    checkout = provider.retrieve_checkout_session(session_id)
    # Sessions are opened here only for the member's own customer (see start_checkout).
    owner_id = lock_member_of(checkout.customer_id) if checkout.customer_id else None
    if member_id is not None and owner_id != member_id:
        raise BillingError(_("This payment page belongs to another account."))
    if owner_id is None:
        customer = f"customer {checkout.customer_id}" if checkout.customer_id else "no customer"
        raise Ignored(f"checkout session {checkout.id} was not opened here, for {customer}")
    if checkout.status == CheckoutStatus.COMPLETE and checkout.mode in tuple(CheckoutMode):
        # One page paid: any other of the member's of the same kind must not be paid as well.
        others = []
        for row in _open_checkouts(owner_id, CheckoutMode(checkout.mode)):
            if row.stripe_checkout_session_id == checkout.id:
                row.status = CheckoutStatus.COMPLETE
            else:
                others.append(row)
        _close_checkouts(others, provider=provider)
    _record_checkout(checkout, provider)
    return checkout


def _record_checkout(checkout: CheckoutInfo, provider: Backend) -> None:
    """Record what a checkout of ours came to: its subscription and first invoice, or a gift."""
    if checkout.subscription_id:
        info = checkout.subscription or provider.retrieve_subscription(checkout.subscription_id)
        sync_subscription(info)
        invoice = checkout.invoice
        if invoice is None and info.latest_invoice_id:
            invoice = provider.retrieve_invoice(info.latest_invoice_id)
        if invoice is not None:
            record_invoice(invoice)
    elif checkout.mode == "payment" and checkout.payment_status == "paid":
        record_gift(checkout)


def pay_demo_checkout(session_id: str) -> CheckoutInfo:
    """The reader pressed "Pay" on the demo checkout's page: record what Stripe would report.

    :raises demo.DemoCheckoutError: a token not made here, or a checkout closed since.
    """
    paid = demo.pay(session_id)
    if paid.gift is not None:
        record_gift(paid.gift)
        return paid.gift
    assert paid.subscription is not None and paid.invoice is not None
    # In Stripe's order: the subscription, its first invoice paid, then the subscription active
    # (or still trialing, its first charge deferred: that invoice was for nothing).
    sync_subscription(paid.subscription)
    record_invoice(paid.invoice)
    sync_subscription(dataclasses.replace(paid.subscription, status=paid.status_after))
    return demo.DemoBackend().retrieve_checkout_session(session_id)
