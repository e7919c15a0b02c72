"""Drive billing as Stripe would: every change goes through billing's services
(``subscriptions``, ``payments``, ``disputes``) with the gateway's own dataclasses, one committed unit of work per event,
at a chosen time."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from supporters.billing import disputes, payments, subscriptions
from supporters.billing.demo_checkout import CUSTOM_PRODUCT
from supporters.billing.models import Customer, Interval
from supporters.billing.provider import (
    ChargeInfo,
    CheckoutInfo,
    DisputeInfo,
    InvoiceInfo,
    SubscriptionInfo,
)
from supporters.db import insert_ignoring_conflicts
from supporters.extensions import db
from supporters.members.models import Member


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


class Driver:
    """Subscriptions, invoices, refunds, disputes and gifts of test members, at a movable clock.

    The clock is what billing stamps on failures and gifts (``utcnow`` in ``billing.payments`` and ``billing.subscriptions``) and
    what the report ledger dates changes without a date of their own (``rollups.now``).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = utc(2025, 1, 1)
        monkeypatch.setattr("supporters.staff.rollups.now", lambda: self.now)
        monkeypatch.setattr("supporters.billing.payments.utcnow", lambda: self.now)
        monkeypatch.setattr("supporters.billing.subscriptions.utcnow", lambda: self.now)
        self.subscriptions: dict[str, SubscriptionInfo] = {}
        self.invoices: dict[str, InvoiceInfo] = {}
        self.disputes: dict[str, DisputeInfo] = {}
        self._numbers = iter(range(1, 10**9))

    def at(self, when: dt.datetime) -> Driver:
        self.now = when
        return self

    def _commit(self) -> None:
        db.session.commit()

    def _customer(self, member: Member) -> str:
        """The member's customer, linked as joining links it (billing trusts no metadata)."""
        customer_id = f"cus_{member.id}"
        insert_ignoring_conflicts(
            Customer,
            {"member_id": member.id, "stripe_customer_id": customer_id, "created_at": self.now},
        )
        return customer_id

    def subscribe(
        self,
        member: Member,
        sub_id: str,
        *,
        amount: int,
        interval: str = "month",
        currency: str = "EUR",
        tier: str = "custom",
        status: str = "active",
        pay: bool = True,
        **overrides: Any,
    ) -> SubscriptionInfo:
        """A new subscription started now, its first invoice paid (unless ``pay`` is False)."""
        info = SubscriptionInfo(
            id=sub_id,
            customer_id=self._customer(member),
            status=status,
            item_id="si_test",
            price_id=None,
            product_id=CUSTOM_PRODUCT,  # the custom-amount product (no Stripe key: the demo's)
            amount=amount,
            currency=currency,
            interval=interval,
            current_period_start=self.now,
            current_period_end=Interval(interval).after(self.now),
            cancel_at_period_end=False,
            cancel_reason="",
            started_at=self.now,
            canceled_at=None,
            ended_at=None,
            latest_invoice_id=None,
            metadata={"member_id": str(member.id), "tier": tier},
        )
        info = dataclasses.replace(info, **overrides)
        self.subscriptions[sub_id] = info
        subscriptions.sync_subscription(info)
        self._commit()
        if pay:
            self.invoice(sub_id)
        return info

    def update(self, sub_id: str, **changes: Any) -> SubscriptionInfo:
        """What Stripe says about the subscription now (a webhook or a self-service change)."""
        info = dataclasses.replace(self.subscriptions[sub_id], **changes)
        self.subscriptions[sub_id] = info
        subscriptions.sync_subscription(info)
        self._commit()
        return info

    def cancel_now(self, sub_id: str, **changes: Any) -> SubscriptionInfo:
        return self.update(
            sub_id, status="canceled", canceled_at=self.now, ended_at=self.now, **changes
        )

    def invoice(
        self,
        sub_id: str | None = None,
        *,
        inv_id: str | None = None,
        paid: bool = True,
        amount: int | None = None,
    ) -> InvoiceInfo:
        """An invoice of the subscription created now: paid, or failed (open after an attempt).

        With the ``inv_id`` of an earlier invoice, that invoice's new state (a retry).
        """
        if inv_id is not None and inv_id in self.invoices:
            previous = self.invoices[inv_id]
            info = dataclasses.replace(
                previous,
                status="paid" if paid else "open",
                amount_paid=previous.amount_due if paid else 0,
                paid_at=self.now if paid else None,
                attempt_count=previous.attempt_count + 1,
            )
        else:
            subscription = self.subscriptions[sub_id or ""]
            due = amount if amount is not None else subscription.amount
            number = next(self._numbers)
            info = InvoiceInfo(
                id=inv_id or f"in_{number}",
                customer_id=subscription.customer_id,
                subscription_id=subscription.id,
                status="paid" if paid else "open",
                amount_due=due,
                amount_paid=due if paid else 0,
                currency=subscription.currency,
                created_at=self.now,
                paid_at=self.now if paid else None,
                receipt_url="",
                payment_intent_id=f"pi_{number}",
                charge_id=f"ch_{number}",
                attempt_count=1,
                billing_reason="subscription_cycle",
            )
        self.invoices[info.id] = info
        payments.record_invoice(info)
        self._commit()
        return info

    def refund(self, inv_id: str, amount_refunded: int) -> None:
        """Stripe's charge after a refund: the total refunded so far."""
        invoice = self.invoices[inv_id]
        payments.record_charge(
            ChargeInfo(
                id=invoice.charge_id or "",
                customer_id=invoice.customer_id,
                payment_intent_id=invoice.payment_intent_id,
                amount=invoice.amount_paid,
                amount_refunded=amount_refunded,
                currency=invoice.currency,
                status="succeeded",
                disputed=False,
                receipt_url="",
                created_at=self.now,
            )
        )
        self._commit()

    def dispute(
        self,
        inv_id: str,
        dispute_id: str,
        *,
        status: str = "needs_response",
        amount: int | None = None,
        reason: str = "fraudulent",
    ) -> DisputeInfo:
        """Stripe's dispute of an invoice's charge as it is now: opened now, due in a week.

        What it withdraws follows from its status, as Stripe's balance transactions do: the
        disputed amount for a chargeback that is open or lost, nothing for an inquiry or a win.
        """
        invoice = self.invoices[inv_id]
        previous = self.disputes.get(dispute_id)
        if amount is None:
            amount = previous.amount if previous else invoice.amount_paid
        holds = not status.startswith("warning_") and status not in ("won", "prevented")
        info = DisputeInfo(
            id=dispute_id,
            charge_id=invoice.charge_id or "",
            payment_intent_id=invoice.payment_intent_id,
            amount=amount,
            currency=invoice.currency,
            reason=reason,
            status=status,
            evidence_due_at=previous.evidence_due_at if previous else self.now + dt.timedelta(7),
            created_at=previous.created_at if previous else self.now,
            withdrawn_amount=amount if holds else 0,
        )
        self.disputes[dispute_id] = info
        disputes.record_dispute(info)
        self._commit()
        return info

    def gift(self, member: Member, amount: int, currency: str = "EUR") -> None:
        """A one-time gift paid through Checkout (billing writes it with a Core INSERT)."""
        number = next(self._numbers)
        payments.record_gift(
            CheckoutInfo(
                id=f"cs_{number}",
                url=None,
                mode="payment",
                status="complete",
                payment_status="paid",
                customer_id=self._customer(member),
                subscription_id=None,
                payment_intent_id=f"pi_gift_{number}",
                amount_total=amount,
                currency=currency,
                client_reference_id=str(member.id),
                metadata={"member_id": str(member.id)},
            )
        )
        self._commit()
