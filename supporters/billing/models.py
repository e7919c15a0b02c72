"""Tiers, Stripe customers, Checkout Sessions, subscriptions, payments, disputes, received
Stripe events and funding goals.

Amounts are integers in the currency's minor unit; the currency is an ISO 4217 code stored in
upper case. Subscription statuses are Stripe's own strings, so a fetched subscription maps 1:1.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supporters.db import currency_check, enum_column, utcnow
from supporters.extensions import Model
from supporters.members.models import Member


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day and time ``months`` later (or earlier), clamped to the month's last day."""
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class Interval(enum.StrEnum):
    """How often a subscription renews (Stripe's ``recurring.interval``)."""

    MONTH = "month"
    YEAR = "year"

    def after(self, moment: dt.datetime, periods: int = 1) -> dt.datetime:
        """The moment ``periods`` billing periods later (negative: earlier)."""
        return add_months(moment, periods * (1 if self is Interval.MONTH else 12))


class SubscriptionStatus(enum.StrEnum):
    """Stripe's subscription statuses, spelled exactly as the API sends them."""

    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"


class PaymentKind(enum.StrEnum):
    SUBSCRIPTION = "subscription"
    ONE_TIME = "one_time"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


class DisputeStatus(enum.StrEnum):
    """Stripe's dispute statuses, spelled exactly as the API sends them.

    ``warning_*`` are inquiries: the bank asks before it charges back, and nothing is withdrawn.
    """

    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    APPEAL_NEEDS_RESPONSE = "appeal_needs_response"
    APPEAL_UNDER_REVIEW = "appeal_under_review"
    WON = "won"
    LOST = "lost"
    PREVENTED = "prevented"

    @property
    def is_open(self) -> bool:
        """Not decided yet: money may still be withdrawn or come back."""
        return self not in CLOSED_DISPUTE_STATUSES

    @property
    def needs_response(self) -> bool:
        """Waiting for the newsroom's evidence, before ``evidence_due_at``."""
        return self in RESPONSE_DISPUTE_STATUSES


CLOSED_DISPUTE_STATUSES = (
    DisputeStatus.WARNING_CLOSED,
    DisputeStatus.WON,
    DisputeStatus.LOST,
    DisputeStatus.PREVENTED,
)
OPEN_DISPUTE_STATUSES = tuple(s for s in DisputeStatus if s not in CLOSED_DISPUTE_STATUSES)
RESPONSE_DISPUTE_STATUSES = (
    DisputeStatus.WARNING_NEEDS_RESPONSE,
    DisputeStatus.NEEDS_RESPONSE,
    DisputeStatus.APPEAL_NEEDS_RESPONSE,
)


class CheckoutMode(enum.StrEnum):
    """What a Checkout Session sells (Stripe's ``mode``)."""

    SUBSCRIPTION = "subscription"
    PAYMENT = "payment"  # a one-time gift


class CheckoutStatus(enum.StrEnum):
    """Stripe's Checkout Session statuses, spelled as the API sends them."""

    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


class GoalMeasure(enum.StrEnum):
    """What a funding goal counts: recurring revenue per month, or active patrons."""

    MONTHLY_REVENUE = "monthly_revenue"
    PATRONS = "patrons"


class Tier(Model):
    """A level of support staff define: a name, what it gives, and its monthly and yearly price."""

    __tablename__ = "tiers"
    __table_args__ = (
        sa.CheckConstraint("monthly_amount > 0", name="monthly_amount_positive"),
        sa.CheckConstraint("yearly_amount > 0", name="yearly_amount_positive"),
        currency_check(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    monthly_amount: Mapped[int]
    yearly_amount: Mapped[int]
    currency: Mapped[str] = mapped_column(sa.String(3))
    is_active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    stripe_product_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_monthly_price_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_yearly_price_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def amount_for(self, interval: Interval) -> int:
        """The price of one period of the given interval, in minor units."""
        return self.monthly_amount if interval is Interval.MONTH else self.yearly_amount


class Customer(Model):
    """The one Stripe customer of a member: a second one is refused by the database."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), unique=True
    )
    stripe_customer_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    member: Mapped[Member] = relationship()


class CheckoutSession(Model):
    """A Checkout Session opened here for a member: each member has at most one open per mode.

    A session stays payable until it expires (24 hours at Stripe), so two tabs of the support
    page would otherwise be two ways to pay.
    """

    __tablename__ = "checkout_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    # Stripe's ids are about 70 characters; the demo checkout's are signed tokens of hundreds.
    stripe_checkout_session_id: Mapped[str] = mapped_column(sa.Text, unique=True)
    stripe_customer_id: Mapped[str] = mapped_column(sa.String(255))
    # The support form's attempt it was opened for: that form submitted twice must find its
    # page kept open, not closed as another tab's.
    attempt: Mapped[str] = mapped_column(sa.String(64))
    mode: Mapped[CheckoutMode] = mapped_column(enum_column(CheckoutMode, "checkout_mode"))
    status: Mapped[CheckoutStatus] = mapped_column(
        enum_column(CheckoutStatus, "checkout_status"), default=CheckoutStatus.OPEN
    )
    expires_at: Mapped[dt.datetime | None]  # NULL: never (the demo checkout)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Subscription(Model):
    """A member's recurring support, mirroring one Stripe subscription."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        currency_check(),
        sa.Index("ix_subscriptions_status_tier", "status", "tier_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    # NULL: a custom amount rather than one of the tiers.
    tier_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("tiers.id", ondelete="RESTRICT"), index=True
    )
    interval: Mapped[Interval] = mapped_column(enum_column(Interval, "billing_interval"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[SubscriptionStatus] = mapped_column(
        enum_column(SubscriptionStatus, "subscription_status"),
        default=SubscriptionStatus.INCOMPLETE,
    )
    stripe_subscription_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    stripe_price_id: Mapped[str | None] = mapped_column(sa.String(255))
    current_period_start: Mapped[dt.datetime | None]
    current_period_end: Mapped[dt.datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    cancel_reason: Mapped[str] = mapped_column(sa.String(500), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    canceled_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    member: Mapped[Member] = relationship()
    tier: Mapped[Tier | None] = relationship()

    @property
    def monthly_amount(self) -> int:
        """Recurring revenue per month in minor units: a yearly plan counts as a twelfth."""
        return self.amount if self.interval is Interval.MONTH else self.amount // 12


class Payment(Model):
    """Money that moved or tried to: one row per Stripe invoice (or charge, for one-time gifts)."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("amount >= 0", name="amount_non_negative"),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= amount", name="refund_within_amount"
        ),
        sa.CheckConstraint(
            "disputed_amount >= 0 AND disputed_amount <= amount", name="dispute_within_amount"
        ),
        sa.CheckConstraint(
            "stripe_invoice_id IS NOT NULL OR stripe_charge_id IS NOT NULL"
            " OR stripe_payment_intent_id IS NOT NULL",
            name="has_stripe_id",
        ),
        currency_check(),
        sa.Index("ix_payments_status_paid_at", "status", "paid_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Kept (SET NULL) when a member's data is deleted: the ledger must still add up.
    member_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    subscription_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[PaymentKind] = mapped_column(
        enum_column(PaymentKind, "payment_kind"), default=PaymentKind.SUBSCRIPTION
    )
    stripe_invoice_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[PaymentStatus] = mapped_column(
        enum_column(PaymentStatus, "payment_status"), default=PaymentStatus.PENDING
    )
    refunded_amount: Mapped[int] = mapped_column(default=0)
    # What disputes hold back now: the sum of its disputes' ``withdrawn_amount`` (record_dispute).
    disputed_amount: Mapped[int] = mapped_column(default=0)
    failure_message: Mapped[str] = mapped_column(sa.String(500), default="")
    receipt_url: Mapped[str] = mapped_column(sa.String(500), default="")
    paid_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
    # When its first dispute was opened (Stripe's time).
    disputed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)

    member: Mapped[Member | None] = relationship()
    subscription: Mapped[Subscription | None] = relationship()


class Dispute(Model):
    """A cardholder's bank disputing a payment, mirroring one Stripe dispute.

    ``withdrawn_amount`` is what Stripe holds back now because of it, in the dispute's currency:
    its withdrawals less its reinstatements (an open chargeback or a lost one: the disputed
    amount; an inquiry, or a won chargeback: nothing). Stripe's dispute fee is not in it.
    """

    __tablename__ = "disputes"
    __table_args__ = (
        sa.CheckConstraint("amount >= 0", name="amount_non_negative"),
        sa.CheckConstraint(
            "withdrawn_amount >= 0 AND withdrawn_amount <= amount", name="withdrawn_within_amount"
        ),
        currency_check(),
        # Open disputes, the soonest deadline first.
        sa.Index("ix_disputes_status_evidence_due_at", "status", "evidence_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    # Kept (SET NULL) if the payment row goes: what was withdrawn stays on record.
    payment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="SET NULL"), index=True
    )
    stripe_charge_id: Mapped[str] = mapped_column(sa.String(255))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(sa.String(3))
    withdrawn_amount: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(sa.String(64), default="")
    status: Mapped[DisputeStatus] = mapped_column(enum_column(DisputeStatus, "dispute_status"))
    # NULL: the bank takes no response.
    evidence_due_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]

    payment: Mapped[Payment | None] = relationship()


class StripeEvent(Model):
    """A webhook event, recorded once by its Stripe id before anything acts on it."""

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    type: Mapped[str] = mapped_column(sa.String(100), index=True)
    api_version: Mapped[str] = mapped_column(sa.String(64), default="")
    livemode: Mapped[bool] = mapped_column(default=False)
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(sa.Text, default="")
    # Why an event of a type we handle was not acted on (another integration's customer or
    # product, an object it does not name); empty when it was, or when its type is not handled.
    ignored_reason: Mapped[str] = mapped_column(sa.String(500), default="")


class FundingGoal(Model):
    """A public target ("€5,000 a month lets us hire a reporter") with progress shown to readers."""

    __tablename__ = "funding_goals"
    __table_args__ = (
        sa.CheckConstraint("target > 0", name="target_positive"),
        sa.CheckConstraint(
            "measure <> 'monthly_revenue' OR currency IS NOT NULL", name="revenue_has_currency"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    measure: Mapped[GoalMeasure] = mapped_column(enum_column(GoalMeasure, "goal_measure"))
    # Minor units of `currency` per month for revenue goals; a head count for patron goals.
    target: Mapped[int]
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    is_active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    reached_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Offer(Model):
    """A personal offer to one member: what to support and when the first charge falls, reached
    by a signed single-use link (see ``billing.offers``).

    Either a tier or a custom amount, with the interval. Only a keyed hash of the link's secret
    is stored. ``opened_at``: the link was followed (it signs in once); ``used_at``: a checkout
    through it was completed, with the subscription it made.
    """

    __tablename__ = "offers"
    __table_args__ = (
        sa.CheckConstraint("(tier_id IS NULL) <> (amount IS NULL)", name="tier_or_amount"),
        sa.CheckConstraint("(amount IS NULL) = (currency IS NULL)", name="amount_has_currency"),
        sa.CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        sa.CheckConstraint(
            "currency IS NULL OR (length(currency) = 3 AND currency = upper(currency))",
            name="currency_iso",
        ),
        sa.CheckConstraint("expires_at > created_at", name="expires_after_creation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    tier_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tiers.id", ondelete="RESTRICT"))
    amount: Mapped[int | None]  # a custom amount (with its currency) instead of a tier
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    interval: Mapped[Interval] = mapped_column(enum_column(Interval, "billing_interval"))
    first_charge_at: Mapped[dt.datetime | None]  # NULL: charged when they join
    note: Mapped[str] = mapped_column(sa.Text, default="")
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    opened_at: Mapped[dt.datetime | None]  # the first time a link was followed
    link_used_at: Mapped[dt.datetime | None]  # the current link was followed: it is spent
    used_at: Mapped[dt.datetime | None]
    subscription_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscriptions.id", ondelete="SET NULL")
    )

    member: Mapped[Member] = relationship()
    tier: Mapped[Tier | None] = relationship()

    @property
    def is_opened(self) -> bool:
        return self.opened_at is not None

    @property
    def is_used(self) -> bool:
        return self.used_at is not None
