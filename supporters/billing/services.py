"""Billing operations: choosing what to pay, checkout, self-service, and the idempotent sync.

``sync_subscription`` and ``record_invoice`` are the only ways our subscription and payment rows
change after a checkout: the webhook, the success page, reconciliation and the demo checkout all
call them with what the payment provider says now, so arrival order and repetition do not
matter. Services flush; the caller commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from supporters.audit import AuditEntry, record_action
from supporters.billing.backend import backend
from supporters.billing.membership import LIVE_STATUSES
from supporters.billing.models import (
    CheckoutMode,
    CheckoutSession,
    CheckoutStatus,
    Customer,
    FundingGoal,
    GoalMeasure,
    Interval,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    Tier,
)
from supporters.billing.provider import (
    Backend,
    ChargeInfo,
    CheckoutInfo,
    CheckoutRequest,
    InvoiceInfo,
    NewPrice,
    SubscriptionInfo,
)
from supporters.db import insert_ignoring_conflicts, insert_returning, utcnow
from supporters.extensions import db
from supporters.members.models import Member

log = logging.getLogger(__name__)

# Statuses in which a subscription counts as a paying patron in figures shown to the public.
COUNTED_STATUSES = (
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PAST_DUE,
)

CUSTOM = "custom"

# The audit action of a duplicate subscription cancelled and refunded (actor: the system).
DUPLICATE_CANCELLED = "billing.duplicate_cancelled"


class BillingError(Exception):
    """Something the member asked for cannot be done; ``message`` is fit to show them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AlreadySupporting(BillingError):
    """The member already has a live subscription: change it instead of starting another."""


class Ignored(Exception):
    """Something this installation does not act on, by design; ``str(exc)`` says why.

    Stripe sends every event of the account (other installations', other tools', the
    Dashboard's): acting on them would count strangers and money that is not ours, and retrying
    would not change the answer.
    """


class UnknownCustomer(Ignored):
    """A subscription, invoice or checkout of a customer no member here is linked to."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} belongs to no member here")
        self.customer_id = customer_id


class UnknownCharge(Ignored):
    """A refund or dispute of a charge that is none of the payments recorded here.

    It may be ours all the same, its payment not recorded yet (the webhook then looks for it
    through Stripe), or another integration's.
    """


class ForeignProduct(Ignored):
    """A subscription for a product this installation did not make: not support, even on a
    member's own customer (the Dashboard, a shop on the same account)."""

    def __init__(self, info: SubscriptionInfo) -> None:
        super().__init__(
            f"subscription {info.id} is for product {info.product_id or '(none)'},"
            " which this installation did not make"
        )


@dataclasses.dataclass(frozen=True)
class Choice:
    """What a reader picked on the support page: a tier or an amount, and how often."""

    tier: Tier | None
    amount: int
    currency: str
    interval: Interval | None  # None: a one-time gift

    @property
    def is_recurring(self) -> bool:
        return self.interval is not None

    @property
    def tier_key(self) -> str:
        return self.tier.slug if self.tier else CUSTOM


# --- public figures ----------------------------------------------------------------------


def monthly_revenue(currency: str) -> int:
    """Recurring revenue per month in one currency, in minor units (a yearly plan is a twelfth)."""
    monthly = sa.case(
        # Integer division per subscription, as Subscription.monthly_amount and the reports do.
        (Subscription.interval == Interval.YEAR, Subscription.amount // 12),
        else_=Subscription.amount,
    )
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(monthly), 0)).where(
            Subscription.status.in_(COUNTED_STATUSES), Subscription.currency == currency
        )
    )
    return int(total or 0)


def patron_count() -> int:
    """Members with at least one subscription that counts."""
    count = db.session.scalar(
        sa.select(sa.func.count(sa.distinct(Subscription.member_id))).where(
            Subscription.status.in_(COUNTED_STATUSES)
        )
    )
    return int(count or 0)


def goal_progress(goal: FundingGoal) -> int:
    """How far a funding goal has come: minor units per month, or a number of patrons."""
    if goal.measure is GoalMeasure.PATRONS:
        return patron_count()
    assert goal.currency is not None  # the CHECK constraint guarantees it
    return monthly_revenue(goal.currency)


def active_tiers() -> Sequence[Tier]:
    return db.session.scalars(
        sa.select(Tier).where(Tier.is_active).order_by(Tier.position, Tier.monthly_amount)
    ).all()


# --- choosing ----------------------------------------------------------------------------


def minimum_amount() -> int:
    return int(current_app.config["MINIMUM_AMOUNT"])


def make_choice(*, tier_slug: str, amount: int | None, interval: str) -> Choice:
    """Validate a reader's pick from the support page.

    :raises BillingError: an unknown or retired tier, a missing or too small amount.
    """
    currency = current_app.config["CURRENCY"]
    period = None if interval == "once" else Interval(interval)
    if tier_slug and tier_slug != CUSTOM:
        tier = db.session.scalar(sa.select(Tier).where(Tier.slug == tier_slug, Tier.is_active))
        if tier is None:
            raise BillingError(_("This tier is not offered any more. Please choose another."))
        if period is None:
            raise BillingError(
                _("Tiers renew monthly or yearly; for a one-time gift, enter an amount.")
            )
        return Choice(
            tier=tier, amount=tier.amount_for(period), currency=tier.currency, interval=period
        )
    if amount is None:
        raise BillingError(_("Enter an amount, or choose one of the tiers."))
    if amount < minimum_amount():
        from supporters.i18n import money

        raise BillingError(
            _(
                "The smallest amount we can accept is %(amount)s.",
                amount=money(minimum_amount(), currency),
            )
        )
    if amount > int(current_app.config["MAXIMUM_AMOUNT"]):
        raise BillingError(_("For a gift this large, please write to us."))
    return Choice(tier=None, amount=amount, currency=currency, interval=period)


# --- customers and checkout --------------------------------------------------------------


def live_subscription(member_id: int) -> Subscription | None:
    """The member's live subscription (incomplete, active, past due...), if any."""
    return db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.member_id == member_id, Subscription.status.in_(LIVE_STATUSES))
        .order_by(Subscription.created_at.desc())
        .limit(1)
    ).first()


def ensure_customer(member: Member, provider: Backend | None = None) -> str:
    """The member's one payment-provider customer, created the first time it is needed.

    A retry or a concurrent request reuses the same customer: the provider call is idempotent
    per member and the database keeps one row per member.
    """
    existing = db.session.scalar(
        sa.select(Customer.stripe_customer_id).where(Customer.member_id == member.id)
    )
    if existing:
        return existing
    provider = provider or backend()
    customer_id = provider.create_customer(
        email=member.email, name=member.display_name, member_id=member.id
    )
    insert_ignoring_conflicts(
        Customer,
        {"member_id": member.id, "stripe_customer_id": customer_id, "created_at": utcnow()},
    )
    stored = db.session.scalar(
        sa.select(Customer.stripe_customer_id).where(Customer.member_id == member.id)
    )
    assert stored is not None
    return stored


def _price_for(choice: Choice, provider: Backend) -> tuple[str | None, NewPrice | None]:
    if choice.tier is not None and choice.interval is not None:
        price_id = (
            choice.tier.stripe_monthly_price_id
            if choice.interval is Interval.MONTH
            else choice.tier.stripe_yearly_price_id
        )
        if price_id:
            return price_id, None
        product_id = choice.tier.stripe_product_id
    else:
        product_id = None
    product_id = product_id or provider.custom_product_id()
    if not product_id:
        raise BillingError(_("Payments are not set up yet. Please try again later."))
    interval = choice.interval.value if choice.interval else None
    return None, NewPrice(
        amount=choice.amount,
        currency=choice.currency,
        interval=interval,  # type: ignore[arg-type]
        product_id=product_id,
    )


def _lock_customer(member_id: int) -> None:
    """Take the lock of the member's customer row (PostgreSQL; SQLite runs one writer at a time).

    Starting a checkout, completing one and syncing a subscription take it first, so one
    member's run one at a time, each reading what the one before it committed.
    """
    db.session.execute(
        sa.select(Customer.id).where(Customer.member_id == member_id).with_for_update()
    )


@functools.cache
def _member_lock() -> sa.Select[int]:
    """The member whose customer ``customer_id`` is, their customer row locked; built once."""
    return (
        sa.select(Customer.member_id)
        .where(Customer.stripe_customer_id == sa.bindparam("customer_id", type_=sa.String))
        .with_for_update()
    )


def _lock_member_of(customer_id: str) -> int | None:
    """The member whose customer this is, their customer row locked (see _lock_customer)."""
    return db.session.scalar(_member_lock(), {"customer_id": customer_id})


def _already_supporting() -> AlreadySupporting:
    """The refusal of a second subscription, in the member's language."""
    return AlreadySupporting(
        _("You already support us. You can change your amount or tier instead.")
    )


def start_checkout(
    member: Member, choice: Choice, *, success_url: str, cancel_url: str, attempt: str
) -> CheckoutInfo:
    """Open a checkout for the member's choice, closing their other open one of its kind;
    ``attempt`` (the support form's) makes a double submit reuse it.

    :raises AlreadySupporting: a recurring choice while a subscription is live, found out too
        when the member's other open checkout turns out to have been completed.
    :raises BillingError: payments are not set up.
    """
    provider = backend()
    customer_id = ensure_customer(member, provider)
    _lock_customer(member.id)  # a second tab's start waits for the first's
    if choice.is_recurring and live_subscription(member.id) is not None:
        raise _already_supporting()
    price_id, new_price = _price_for(choice, provider)
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
    owner_id = _lock_member_of(checkout.customer_id) if checkout.customer_id else None
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


# --- the idempotent sync -----------------------------------------------------------------


def _customer_member(customer_id: str | sa.BindParameter[str]) -> sa.ScalarSelect[int]:
    """The member a customer is linked to, as a subquery to read along with another row."""
    return (
        sa.select(Customer.member_id)
        .where(Customer.stripe_customer_id == customer_id)
        .scalar_subquery()
    )


def _member_for_customer(customer_id: str) -> int | None:
    """The member whose customer this is: one this installation made for them (ensure_customer).

    Never from metadata: any integration on the account can write ``member_id`` there.
    """
    return db.session.scalar(sa.select(_customer_member(customer_id)))


def _price_tier(price_id: sa.BindParameter[str | None]) -> sa.ScalarSelect[int]:
    """The tier selling a price, as a subquery (NULL when none does, or for no price)."""
    return (
        sa.select(Tier.id)
        .where(
            sa.or_(
                Tier.stripe_monthly_price_id == price_id, Tier.stripe_yearly_price_id == price_id
            )
        )
        .scalar_subquery()
    )


def _product_tier(product_id: sa.BindParameter[str | None]) -> sa.ScalarSelect[int]:
    """The tier whose product this is, as a subquery (NULL when none is)."""
    return sa.select(Tier.id).where(Tier.stripe_product_id == product_id).scalar_subquery()


def _selling_tier(
    price_id: sa.BindParameter[str | None], product_id: sa.BindParameter[str | None]
) -> sa.ColumnElement[int | None]:
    """The tier selling the price, else the tier whose product it is (an older price of it)."""
    return sa.func.coalesce(_price_tier(price_id), _product_tier(product_id))


def _is_custom_product(product_id: str | None) -> bool:
    """Whether this is the product custom amounts are sold under (cached by the backend)."""
    return product_id is not None and product_id == backend().custom_product_id()


def is_support(info: SubscriptionInfo) -> bool:
    """Whether a subscription sells what this installation made: a tier, or a custom amount."""
    tier_id = db.session.scalar(
        sa.select(
            _selling_tier(
                sa.bindparam("price_id", info.price_id, type_=sa.String),
                sa.bindparam("product_id", info.product_id, type_=sa.String),
            )
        )
    )
    return tier_id is not None or _is_custom_product(info.product_id)


def _tier_for(info: SubscriptionInfo, tier_id: int | None) -> int | None:
    """The tier selling it (looked up already); else, under the custom-amount product, the tier
    metadata names if the amount matches it (the demo checkout sells tiers so)."""
    if tier_id is not None:
        return tier_id
    slug = info.metadata.get("tier")
    if slug and slug != CUSTOM:
        tier = db.session.scalar(sa.select(Tier).where(Tier.slug == slug))
        # A tier named in metadata only counts if the amount still matches it.
        if tier is not None and info.amount in (tier.monthly_amount, tier.yearly_amount):
            return tier.id
    return None


class _Found(NamedTuple):
    row: Subscription | None
    member_id: int | None
    tier_id: int | None
    others_counted: int  # the member's other subscriptions that count as support


@functools.cache
def _subscription_queries() -> tuple[sa.Select[Any], sa.Select[Any]]:
    """Our row of a subscription, locked and read afresh, with the tier selling it and the
    member's other counted subscriptions looked up in the same statement; and those two
    alone. Built once."""
    tier = _selling_tier(
        sa.bindparam("price_id", type_=sa.String), sa.bindparam("product_id", type_=sa.String)
    )
    subscription_id = sa.bindparam("subscription_id", type_=sa.String)
    others = (
        sa.select(sa.func.count())
        .where(
            Subscription.member_id == sa.bindparam("member_id"),
            Subscription.status.in_(COUNTED_STATUSES),
            Subscription.stripe_subscription_id != subscription_id,
        )
        .scalar_subquery()
    )
    locked = (
        sa.select(Subscription, tier, others)
        .where(Subscription.stripe_subscription_id == subscription_id)
        .with_for_update(of=Subscription)
        .execution_options(populate_existing=True)
    )
    return locked, sa.select(tier, others)


def _lock_subscription(info: SubscriptionInfo) -> _Found:
    """The customer's member, with their customer row locked (PostgreSQL), so that one member's
    subscriptions change one at a time; then our row of the subscription, locked and read
    afresh, with the tier selling it and the member's other counted subscriptions."""
    member_id = _lock_member_of(info.customer_id)
    if member_id is None:
        return _Found(None, None, None, 0)
    # A statement of its own, after the lock: it reads what the member's last change committed.
    locked, lookups = _subscription_queries()
    params = {
        "subscription_id": info.id,
        "member_id": member_id,
        "price_id": info.price_id,
        "product_id": info.product_id,
    }
    found = db.session.execute(locked, params).first()
    if found is not None:
        return _Found(found[0], member_id, found[1], found[2])
    tier_id, others = db.session.execute(lookups, params).one()
    return _Found(None, member_id, tier_id, others)


def sync_subscription(info: SubscriptionInfo) -> Subscription:
    """Make our row say what the provider says about a subscription, now. Idempotent.

    A second subscription that counts for the same member is cancelled and refunded (the newer
    one: see :func:`_cancel_duplicates`).

    :raises UnknownCustomer: the customer belongs to no member here.
    :raises ForeignProduct: it sells neither a tier nor a custom amount of this installation.
    """
    found = _lock_subscription(info)
    if found.member_id is None:
        raise UnknownCustomer(info.customer_id)
    if found.tier_id is None and not _is_custom_product(info.product_id):
        raise ForeignProduct(info)
    row = _write_subscription(info, found)
    if found.others_counted and row.status in COUNTED_STATUSES:
        _cancel_duplicates(found.member_id)
    return row


def _write_subscription(info: SubscriptionInfo, found: _Found) -> Subscription:
    """Insert or update our row of the subscription (read and locked in ``found``)."""
    now = utcnow()
    status = SubscriptionStatus(info.status)
    values = {
        "member_id": found.member_id,
        "tier_id": _tier_for(info, found.tier_id),
        "interval": Interval(info.interval),
        "currency": info.currency,
        "status": status,
        "stripe_customer_id": info.customer_id,
        "stripe_price_id": info.price_id,
        "current_period_start": info.current_period_start,
        "current_period_end": info.current_period_end,
        "cancel_at_period_end": info.cancel_at_period_end,
        "canceled_at": info.canceled_at,
        "ended_at": info.ended_at,
    }
    if status is SubscriptionStatus.CANCELED and info.ended_at is None:
        values["ended_at"] = info.canceled_at or now
    row = found.row
    if row is None:
        # New here: inserted whole, in one statement. A concurrent delivery may insert it
        # first; then this one waits for it, and updates its row like any other.
        row = insert_returning(
            Subscription,
            {
                **values,
                "stripe_subscription_id": info.id,
                "amount": max(info.amount, 1),
                "cancel_reason": info.cancel_reason[:500],
                "started_at": info.started_at,
                "created_at": info.started_at or now,
                "updated_at": now,
            },
            conflict_on=["stripe_subscription_id"],
        )
        if row is not None:
            return row
        row = _lock_subscription(info).row
        assert row is not None
    if info.amount > 0:
        values["amount"] = info.amount
    if info.cancel_reason:
        values["cancel_reason"] = info.cancel_reason[:500]
    values["started_at"] = info.started_at or row.started_at
    _assign(row, values)
    db.session.flush()
    return row


def _cancel_duplicates(member_id: int) -> None:
    """Keep the member's oldest subscription that counts; cancel each newer one now and refund
    what it charged, saying why in the audit log.

    Two checkouts that got past the one-open-page guard, or one made by hand in the Dashboard,
    would otherwise both renew: a member must never pay twice. The customer row is locked, so
    two deliveries about the two subscriptions come here one after the other, and the second
    finds nothing left to do. Refunds go first: a failure after them is retried whole, and
    their idempotency keys keep the retry from refunding twice.
    """
    counted = db.session.scalars(
        sa.select(Subscription)
        .where(
            Subscription.member_id == member_id,
            Subscription.status.in_(COUNTED_STATUSES),
            Subscription.stripe_subscription_id.is_not(None),
        )
        .order_by(
            sa.func.coalesce(Subscription.started_at, Subscription.created_at),
            Subscription.stripe_subscription_id,
        )
    ).all()
    if len(counted) < 2:
        return
    kept, *newer = counted
    provider = backend()
    recorded = duplicates_cancelled(member_id)
    for duplicate in newer:
        subscription_id = duplicate.stripe_subscription_id or ""
        refunded = 0
        for invoice in provider.list_paid_invoices(subscription_id):
            record_invoice(invoice)  # the ledger row the refund lands on
            if invoice.payment_intent_id and invoice.amount_paid > 0:
                charge = provider.refund_in_full(
                    invoice.payment_intent_id, idempotency_key=f"refund-duplicate-{invoice.id}"
                )
                record_charge(charge)
                refunded += charge.amount_refunded
        sync_subscription(
            provider.cancel_subscription_now(
                subscription_id, idempotency_key=f"cancel-duplicate-{subscription_id}"
            )
        )
        if any(e.details.get("subscription") == subscription_id for e in recorded):
            continue  # cancelled here before, and revived since by a stale read
        record_action(
            DUPLICATE_CANCELLED,
            actor_id=None,
            target_type="member",
            target_id=member_id,
            details={
                "subscription": subscription_id,
                "kept": kept.stripe_subscription_id,
                "refunded": refunded,
                "currency": duplicate.currency,
                "reason": "a second subscription of the member that counted as support",
            },
        )
        log.warning(
            "Member %s had a second live subscription: %s cancelled and refunded, %s kept",
            member_id,
            subscription_id,
            kept.stripe_subscription_id,
        )


def duplicates_cancelled(member_id: int) -> Sequence[AuditEntry]:
    """The member's subscriptions cancelled and refunded as duplicates, newest first."""
    return db.session.scalars(
        sa.select(AuditEntry)
        .where(
            AuditEntry.action == DUPLICATE_CANCELLED,
            AuditEntry.target_type == "member",
            AuditEntry.target_id == str(member_id),
        )
        .order_by(AuditEntry.id.desc())
    ).all()


def _assign(row: object, values: Mapping[str, object]) -> None:
    """Set the attributes whose values differ.

    A row told what it already says stays clean, and flushing a clean session costs nothing;
    a dirty one is compared column by column (with the rollups' listeners) to find no change.
    """
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def _payment_status(info: InvoiceInfo) -> PaymentStatus | None:
    if info.status == "paid":
        return PaymentStatus.PAID
    if info.status == "uncollectible" or (info.status == "open" and info.attempt_count > 0):
        return PaymentStatus.FAILED
    if info.status == "open":
        return PaymentStatus.PENDING
    return None  # draft and void invoices move no money


@functools.cache
def _invoice_lookups() -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """The member of the customer ``customer_ref`` and our subscription of the Stripe id
    ``subscription_ref`` (NULL when none), as subqueries with bind parameters, built once."""
    member = _customer_member(sa.bindparam("customer_ref", type_=sa.String))
    subscription = (
        sa.select(Subscription.id)
        .where(Subscription.stripe_subscription_id == sa.bindparam("subscription_ref"))
        .scalar_subquery()
    )
    return member, subscription


def _invoice_computed_columns() -> dict[str, sa.ColumnElement[Any]]:
    """What record_invoice's INSERT looks up: the member, the subscription, and the payment
    intent ``intent_ref``, claimed unless another payment holds it (see _claim_payment_intent).
    """
    member, subscription = _invoice_lookups()
    intent = sa.bindparam("intent_ref", type_=sa.String)
    unclaimed_intent = (
        sa.select(intent)
        .where(~sa.exists().where(Payment.stripe_payment_intent_id == intent))
        .scalar_subquery()
    )
    return {
        "member_id": member,
        "subscription_id": subscription,
        "stripe_payment_intent_id": unclaimed_intent,
    }


@functools.cache
def _invoice_lock() -> sa.Select[Any]:
    """A payment recorded before (``invoice_ref``), locked, with the lookups; built once."""
    member, subscription = _invoice_lookups()
    return (
        sa.select(Payment, member, subscription)
        .where(Payment.stripe_invoice_id == sa.bindparam("invoice_ref"))
        .with_for_update(of=Payment)
        .execution_options(populate_existing=True)
    )


def record_invoice(info: InvoiceInfo) -> Payment | None:
    """Upsert the ledger row of an invoice from what the provider says now. Idempotent.

    Only invoices of subscriptions are support: callers sync the subscription first
    (:func:`sync_subscription` refuses one that is not support). Returns None for invoices that
    move no money (drafts, voided, zero amounts).

    :raises Ignored: the invoice belongs to no subscription (a one-off invoice, which the
        newsroom may make in the Dashboard on a member's customer for something else).
    """
    if info.subscription_id is None:
        raise Ignored(
            f"invoice {info.id} belongs to no subscription: a one-off invoice is not support"
        )
    status = _payment_status(info)
    amount = info.amount_paid if status is PaymentStatus.PAID else info.amount_due
    if status is None or amount <= 0:
        return None
    now = utcnow()
    paid = status is PaymentStatus.PAID
    failed = status is PaymentStatus.FAILED
    # The member, the subscription and the payment intent are looked up by the statement that
    # writes or locks (see _invoice_computed_columns and _invoice_lock).
    lookups = {"customer_ref": info.customer_id, "subscription_ref": info.subscription_id}
    values: dict[str, object] = {
        **lookups,
        "intent_ref": info.payment_intent_id,
        "stripe_invoice_id": info.id,
        "kind": PaymentKind.SUBSCRIPTION,
        "amount": amount,
        "currency": info.currency,
        "status": status,
        "refunded_amount": 0,
        "failure_message": _("The card was declined.") if failed else "",
        "receipt_url": info.receipt_url,
        "stripe_charge_id": info.charge_id,
        "created_at": info.created_at or now,
        "paid_at": (info.paid_at or now) if paid else None,
        "failed_at": now if failed else None,
    }
    inserted = insert_returning(
        Payment, values, conflict_on=["stripe_invoice_id"], computed=_invoice_computed_columns
    )
    if inserted is not None:
        return inserted
    # Recorded before: lock the row and bring it up to date.
    found = db.session.execute(_invoice_lock(), {**lookups, "invoice_ref": info.id}).one()
    payment: Payment = found[0]
    found_member_id: int | None = found[1]
    found_subscription_id: int | None = found[2]
    if info.payment_intent_id and payment.stripe_payment_intent_id != info.payment_intent_id:
        _claim_payment_intent(payment, info.payment_intent_id)
    changes: dict[str, object] = {
        "member_id": payment.member_id or found_member_id,
        "subscription_id": found_subscription_id or payment.subscription_id,
        "amount": amount,
        "currency": info.currency,
        "receipt_url": info.receipt_url or payment.receipt_url,
        "stripe_charge_id": info.charge_id or payment.stripe_charge_id,
    }
    if payment.status is not PaymentStatus.PAID:  # a paid invoice never goes back
        changes["status"] = status
    if status is PaymentStatus.PAID:
        changes["paid_at"] = info.paid_at or payment.paid_at or now
    elif status is PaymentStatus.FAILED and payment.failed_at is None:
        changes["failed_at"] = now
        changes["failure_message"] = _("The card was declined.")
    _assign(payment, changes)
    db.session.flush()
    return payment


def _claim_payment_intent(payment: Payment, payment_intent_id: str) -> None:
    other = db.session.scalar(
        sa.select(Payment).where(
            Payment.stripe_payment_intent_id == payment_intent_id, Payment.id != payment.id
        )
    )
    if other is None:
        payment.stripe_payment_intent_id = payment_intent_id


def record_gift(checkout: CheckoutInfo) -> Payment | None:
    """Record a paid one-time gift and its receipt from its checkout. Idempotent by intent."""
    if not checkout.payment_intent_id or not checkout.amount_total or not checkout.currency:
        return None
    member_id = None
    if checkout.customer_id:
        member_id = _member_for_customer(checkout.customer_id)
    now = utcnow()
    insert_ignoring_conflicts(
        Payment,
        {
            "stripe_payment_intent_id": checkout.payment_intent_id,
            "member_id": member_id,
            "kind": PaymentKind.ONE_TIME,
            "amount": checkout.amount_total,
            "currency": checkout.currency,
            "status": PaymentStatus.PAID,
            "refunded_amount": 0,
            "failure_message": "",
            "receipt_url": checkout.receipt_url,
            "stripe_charge_id": checkout.charge_id,
            "paid_at": now,
            "created_at": now,
        },
    )
    gift = db.session.scalars(
        sa.select(Payment).where(Payment.stripe_payment_intent_id == checkout.payment_intent_id)
    ).one()
    # A gift recorded before receipts were kept gets its own the next time its checkout is read.
    if checkout.receipt_url and not gift.receipt_url:
        gift.receipt_url = checkout.receipt_url
        gift.stripe_charge_id = gift.stripe_charge_id or checkout.charge_id
        db.session.flush()
    return gift


def record_charge(info: ChargeInfo) -> Payment:
    """Apply a refund to the payment the charge belongs to. Idempotent.

    The refunded amount is the charge's total refunded so far, never an increment, so a
    repeated or late event cannot refund twice.

    :raises UnknownCharge: the charge is none of the payments recorded here (yet).
    """
    conditions = [Payment.stripe_charge_id == info.id]
    if info.payment_intent_id:
        conditions.append(Payment.stripe_payment_intent_id == info.payment_intent_id)
    payment = db.session.scalars(
        sa.select(Payment).where(sa.or_(*conditions)).with_for_update()
    ).first()
    if payment is None:
        raise UnknownCharge(f"charge {info.id} matches no payment here")
    payment.stripe_charge_id = payment.stripe_charge_id or info.id
    payment.refunded_amount = min(
        max(info.amount_refunded, payment.refunded_amount), payment.amount
    )
    payment.receipt_url = payment.receipt_url or info.receipt_url
    db.session.flush()
    return payment


# --- self-service ------------------------------------------------------------------------


def _require_live(member: Member) -> Subscription:
    subscription = live_subscription(member.id)
    if subscription is None or not subscription.stripe_subscription_id:
        raise BillingError(_("You have no active support to change."))
    return subscription


def change_subscription(member: Member, choice: Choice) -> Subscription:
    """Move the member's subscription to another tier, amount or interval now, prorated.

    :raises BillingError: no live subscription, a one-time choice, or nothing would change.
    """
    subscription = _require_live(member)
    if choice.interval is None:
        raise BillingError(_("Choose monthly or yearly to change your support."))
    if (
        subscription.amount == choice.amount
        and subscription.interval is choice.interval
        and subscription.tier_id == (choice.tier.id if choice.tier else None)
    ):
        raise BillingError(_("That is what you already give."))
    provider = backend()
    current = provider.retrieve_subscription(subscription.stripe_subscription_id or "")
    if current.item_id is None:
        raise BillingError(_("This subscription cannot be changed here. Please contact us."))
    price_id, new_price = _price_for(choice, provider)
    attempt = f"{choice.tier_key}-{choice.amount}-{choice.interval.value}-{subscription.updated_at.timestamp():.0f}"
    updated = provider.change_subscription_price(
        current.id,
        item_id=current.item_id,
        price_id=price_id,
        new_price=new_price,
        metadata={
            "member_id": str(member.id),
            "tier": choice.tier_key,
            "interval": choice.interval.value,
        },
        idempotency_key=f"change-{subscription.id}-{attempt}",
    )
    return sync_subscription(updated)


# Statuses of a subscription whose current period was never paid for: cancelling ends it now.
UNPAID_PERIOD_STATUSES = (
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.PAUSED,
)


def ends_when_cancelled(subscription: Subscription) -> bool:
    """Whether cancelling ends the subscription now rather than at the end of its period.

    A renewal that failed opened a period nobody paid for. Ending it at that period's end
    would keep Stripe retrying the card for weeks (a whole year on a yearly plan) to charge
    for a period the patron has just declined; ending it now stops the retries, since Stripe
    stops collecting open invoices when a subscription is cancelled.
    """
    return subscription.status in UNPAID_PERIOD_STATUSES


def cancel_subscription(member: Member, *, reason: str = "") -> Subscription:
    """Stop the member's support: at the end of the paid period (benefits continue until
    then), or now when its renewal was not paid (see :func:`ends_when_cancelled`).

    :raises BillingError: the member has no live subscription.
    """
    subscription = _require_live(member)
    subscription_id = subscription.stripe_subscription_id or ""
    if ends_when_cancelled(subscription):
        ended = backend().cancel_subscription_now(subscription_id, reason=reason.strip())
        return sync_subscription(ended)
    if subscription.cancel_at_period_end:
        return subscription
    updated = backend().set_cancel_at_period_end(
        subscription_id, cancel=True, reason=reason.strip()
    )
    return sync_subscription(updated)


def resume_subscription(member: Member) -> Subscription:
    """Withdraw a scheduled cancellation before the period ends."""
    subscription = _require_live(member)
    if not subscription.cancel_at_period_end:
        return subscription
    updated = backend().set_cancel_at_period_end(
        subscription.stripe_subscription_id or "", cancel=False
    )
    return sync_subscription(updated)


def portal_url(member: Member, *, return_url: str) -> str:
    """Where the member updates their card and sees invoices (Stripe's Billing Portal).

    :raises BillingError: the member has never paid through Stripe.
    """
    customer_id = db.session.scalar(
        sa.select(Customer.stripe_customer_id).where(Customer.member_id == member.id)
    )
    if customer_id is None:
        raise BillingError(_("You have no payment details with us yet."))
    return backend().create_portal_session(customer_id=customer_id, return_url=return_url)


def payments_of(member_id: int, limit: int = 100) -> Sequence[Payment]:
    return db.session.scalars(
        sa.select(Payment)
        .where(Payment.member_id == member_id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(limit)
    ).all()


def failed_payment_subscriptions(now: dt.datetime | None = None) -> Sequence[Subscription]:
    """Past-due subscriptions, oldest period end first: the staff's failed-payments queue."""
    return db.session.scalars(
        sa.select(Subscription)
        .where(Subscription.status.in_((SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)))
        .order_by(Subscription.current_period_end)
    ).all()
