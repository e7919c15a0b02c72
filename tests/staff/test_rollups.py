"""The rollups stay exact whoever writes the rows, and a rebuild from the ledger agrees."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.billing import figures as billing_figures
from supporters.billing import payments as billing_payments
from supporters.billing import subscriptions as billing_subscriptions
from supporters.billing.membership import COUNTED_STATUSES
from supporters.billing.models import Payment, PaymentStatus, Subscription, SubscriptionStatus
from supporters.billing.provider import CheckoutInfo, InvoiceInfo
from supporters.extensions import db
from supporters.staff import rollups
from supporters.staff.models import Movement, MovementKind, month_number
from supporters.staff.queries import headline, monthly
from supporters.staff.rebuild import rebuild
from tests.conftest import is_postgres
from tests.factories import make_member, make_tier
from tests.staff.driver import Driver, utc


def rebuilt_matches(before: dict[str, Any] | None = None) -> None:
    """Assert that recomputing every rollup from the ledger changes nothing."""
    before = before or rollups.snapshot()
    report = rebuild()
    db.session.commit()
    assert report.movements_added == 0, report
    after = rollups.snapshot()
    for table in before:
        assert before[table] == after[table], (
            table,
            sorted(before[table] - after[table]),
            sorted(after[table] - before[table]),
        )


def mrr_from_rows() -> dict[str, int]:
    """MRR straight from the subscription rows: each yearly plan a twelfth, rounded down."""
    monthly = sa.case(
        (Subscription.interval == "year", Subscription.amount // 12), else_=Subscription.amount
    )
    rows = db.session.execute(
        sa.select(Subscription.currency, sa.func.sum(monthly))
        .where(Subscription.status.in_(COUNTED_STATUSES))
        .group_by(Subscription.currency)
    ).all()
    return {currency: int(total) for currency, total in rows}


def test_every_hard_case_through_billing_agrees_with_a_rebuild(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tier("reader", monthly=500, yearly=5000)
    make_tier("supporter", monthly=1000, yearly=10000)
    ana, ben, cat = (make_member() for _ in range(3))
    db.session.commit()
    d = Driver(monkeypatch)
    d.at(utc(2025, 3, 31, 23, 59)).subscribe(ana, "s1", amount=500, tier="reader")
    d.at(utc(2025, 4, 1, 0, 1)).subscribe(ben, "s2", amount=5000, interval="year", tier="reader")
    d.at(utc(2025, 4, 2)).subscribe(cat, "s3", amount=900, currency="USD")
    # The same webhook twice, and the success page after it: nothing changes.
    d.update("s3")
    d.update("s3")
    # Upgrade mid-month; the same amount as a custom one (another "tier"); then yearly.
    supporter = {"member_id": str(ana.id), "tier": "supporter"}
    d.at(utc(2025, 4, 15)).update("s1", amount=1000, metadata=supporter)
    d.at(utc(2025, 4, 20)).update("s1", metadata={"member_id": str(ana.id), "tier": "custom"})
    d.at(utc(2025, 5, 15)).update("s1", amount=10000, interval="year", metadata=supporter)
    # A refund in two steps (Stripe sends the total refunded so far), then the same again.
    invoice = d.at(utc(2025, 5, 1)).invoice("s2")
    d.refund(invoice.id, 1000)
    d.refund(invoice.id, 3000)
    d.refund(invoice.id, 3000)
    # A renewal fails, is retried in vain, then recovers; another fails and Stripe gives up.
    failed = d.at(utc(2025, 5, 2)).invoice("s3", paid=False)
    d.update("s3", status="past_due")
    d.at(utc(2025, 5, 5)).invoice(inv_id=failed.id, paid=False)
    d.at(utc(2025, 5, 9)).invoice(inv_id=failed.id)
    d.update("s3", status="active")
    d.at(utc(2025, 6, 2)).invoice("s3", paid=False)
    d.update("s3", status="past_due")
    d.at(utc(2025, 6, 20)).update("s3", status="unpaid")
    # Unpaid, then paid after all: the same subscription counts again.
    d.at(utc(2025, 7, 1)).update("s3", status="active")
    # A cancellation at period end, then the end itself.
    d.at(utc(2025, 7, 10)).update("s2", cancel_at_period_end=True, canceled_at=d.now)
    d.at(utc(2026, 4, 1, 0, 1)).update("s2", status="canceled", ended_at=d.now)
    # Ben comes back with a new subscription, and gives a gift.
    d.at(utc(2026, 5, 1)).subscribe(ben, "s4", amount=700)
    d.gift(ben, 1500, "USD")
    # Disputes: what is left of the refunded payment, reviewed and won; a recovered one, lost;
    # an inquiry that becomes a chargeback. The same word from Stripe twice changes nothing.
    d.at(utc(2026, 5, 3)).dispute(invoice.id, "dp_won", amount=2000)
    d.dispute(invoice.id, "dp_won", status="under_review")
    d.at(utc(2026, 6, 20)).dispute(invoice.id, "dp_won", status="won")
    d.dispute(failed.id, "dp_lost")
    d.at(utc(2026, 7, 1)).dispute(failed.id, "dp_lost", status="lost")
    d.dispute(failed.id, "dp_lost", status="lost")
    renewal = d.invoice("s4")
    d.dispute(renewal.id, "dp_inquiry", status="warning_needs_response")
    d.dispute(renewal.id, "dp_inquiry", status="needs_response")

    assert headline.now_figures().mrr == mrr_from_rows()
    assert headline.now_figures().patrons == billing_figures.patron_count() == 3
    withheld = db.session.execute(
        sa.select(Payment.stripe_invoice_id, Payment.disputed_amount).where(
            Payment.disputed_amount > 0
        )
    ).all()
    assert sorted(withheld) == sorted([(failed.id, 900), (renewal.id, 700)])
    kinds = set(db.session.scalars(sa.select(Movement.kind)))
    assert {
        MovementKind.NEW,
        MovementKind.EXPANSION,
        MovementKind.CONTRACTION,
        MovementKind.TRANSFER,
        MovementKind.FAILED_CHURN,
        MovementKind.REACTIVATION,
        MovementKind.VOLUNTARY_CHURN,
    } <= kinds
    rebuilt_matches()


def test_a_gift_written_by_a_core_insert_is_counted(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    giver = make_member()
    db.session.commit()
    Driver(monkeypatch).at(utc(2026, 2, 14)).gift(giver, 2500)
    (month,) = monthly.revenue_months([month_number(utc(2026, 2, 1))])["EUR"]
    assert month.gifts == 2500
    rebuilt_matches()


def test_rows_written_in_bulk_are_counted_by_the_rebuild(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["seed-demo", "--members", "120"])
    assert result.exit_code == 0, result.output
    now = headline.now_figures()
    assert now.patrons == billing_figures.patron_count()
    assert now.mrr == mrr_from_rows()
    paid = db.session.execute(
        sa.select(sa.func.sum(Payment.amount), sa.func.sum(Payment.refunded_amount)).where(
            Payment.status == PaymentStatus.PAID
        )
    ).one()
    received = monthly.revenue_months(list(range(0, month_number(utc(2100, 1, 1)))))
    assert sum(m.paid + m.gifts for m in received["EUR"]) == paid[0]
    assert sum(m.refunded for m in received["EUR"]) == paid[1]
    # A second rebuild finds nothing to catch up.
    rebuilt_matches()


def test_bulk_writes_without_a_rebuild_are_reported(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    member = make_member()
    db.session.flush()
    db.session.execute(
        sa.update(Subscription).where(Subscription.member_id == member.id).values(amount=5)
    )
    with caplog.at_level("WARNING", logger="supporters.staff.listeners"):
        db.session.commit()
    assert "rebuild-rollups" in caplog.text


def test_deleting_a_member_ends_what_they_gave(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    leaver, stayer = make_member(), make_member()
    db.session.commit()
    d = Driver(monkeypatch)
    d.at(utc(2026, 1, 5)).subscribe(leaver, "s_leaver", amount=800)
    d.subscribe(stayer, "s_stayer", amount=300)
    d.at(utc(2026, 2, 1))
    db.session.delete(db.session.get(type(leaver), leaver.id))
    db.session.commit()
    assert headline.now_figures().mrr == {"EUR": 300}
    assert headline.now_figures().patrons == 1
    rebuilt_matches()


def test_a_rolled_back_savepoint_takes_its_figures_with_it(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = make_member()
    db.session.commit()
    d = Driver(monkeypatch)
    d.at(utc(2026, 3, 1)).subscribe(member, "s_kept", amount=500)
    savepoint = db.session.begin_nested()
    billing_subscriptions.sync_subscription(
        dataclasses.replace(d.subscriptions["s_kept"], amount=900)
    )
    billing_payments.record_gift(
        CheckoutInfo(
            id="cs_x",
            url=None,
            mode="payment",
            status="complete",
            payment_status="paid",
            customer_id=f"cus_{member.id}",
            subscription_id=None,
            payment_intent_id="pi_x",
            amount_total=100,
            currency="EUR",
            client_reference_id=None,
        )
    )
    db.session.flush()
    savepoint.rollback()
    db.session.commit()
    assert headline.now_figures().mrr == {"EUR": 500}
    (march,) = monthly.revenue_months([month_number(utc(2026, 3, 1))])["EUR"]
    assert (march.paid, march.gifts) == (500, 0)
    rebuilt_matches()


def test_a_subscription_first_seen_already_cancelled_has_its_history(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reconciliation may find a subscription that began and ended while webhooks were lost."""
    member = make_member()
    db.session.commit()
    Driver(monkeypatch).at(utc(2026, 5, 1)).subscribe(
        member,
        "s_late",
        amount=400,
        pay=False,
        status="canceled",
        started_at=utc(2026, 1, 10),
        canceled_at=utc(2026, 3, 1),
        ended_at=utc(2026, 3, 10),
    )
    months = [month_number(utc(2026, m, 1)) for m in (1, 2, 3, 4, 5)]
    patrons = monthly.patron_months(months)
    assert [(m.new, m.voluntary_churn) for m in patrons] == [(1, 0), (0, 0), (0, 1), (0, 0), (0, 0)]
    rebuilt_matches()


def test_incomplete_then_active_counts_from_its_start(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = make_member()
    db.session.commit()
    d = Driver(monkeypatch)
    d.at(utc(2026, 1, 31, 23, 58)).subscribe(
        member, "s_slow", amount=600, status="incomplete", pay=False
    )
    assert headline.now_figures().patrons == 0
    d.at(utc(2026, 2, 1, 0, 5)).update("s_slow", status="active")
    d.invoice("s_slow")
    (jan,) = monthly.patron_months([month_number(utc(2026, 1, 1))])
    assert jan.new == 1  # dated when it started, not when the payment went through
    rebuilt_matches()


@pytest.mark.postgres_only
def test_concurrent_payments_are_all_counted(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Units of work committing at once add to the same rollup rows without losing any."""
    assert is_postgres()
    members = [make_member() for _ in range(8)]
    db.session.commit()
    d = Driver(monkeypatch).at(utc(2026, 4, 2))
    for member in members:
        d.subscribe(member, f"s_{member.id}", amount=1000, pay=False)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(members))

    def pay(member_id: int) -> None:
        try:
            with app.app_context():
                barrier.wait()
                for n in range(5):
                    d.invoice(f"s_{member_id}", inv_id=f"in_{member_id}_{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pay, args=(m.id,)) for m in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    (april,) = monthly.revenue_months([month_number(utc(2026, 4, 1))])["EUR"]
    assert april.paid == 8 * 5 * 1000
    rebuilt_matches()


def test_statuses_that_do_not_count(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    member = make_member()
    db.session.commit()
    d = Driver(monkeypatch).at(utc(2026, 1, 1))
    d.subscribe(member, "s_p", amount=500)
    for status in ("paused", "active", "unpaid", "past_due", "incomplete_expired"):
        d.at(d.now + dt.timedelta(days=3)).update("s_p", status=status)
    counted = status in ("active", "past_due")
    assert headline.now_figures().patrons == int(counted)
    assert (
        db.session.scalar(sa.select(Subscription.status)) is SubscriptionStatus.INCOMPLETE_EXPIRED
    )
    rebuilt_matches()


def test_an_invoice_open_then_failed_then_paid_is_counted_each_time(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = make_member()
    db.session.commit()
    d = Driver(monkeypatch).at(utc(2026, 3, 1))
    d.subscribe(member, "s_i", amount=800, pay=False)
    d.gift(member, 1200)  # holds the payment intent "pi_gift_1"
    subscription = db.session.scalars(sa.select(Subscription)).one()
    opened = InvoiceInfo(
        id="in_states",
        customer_id=f"cus_{member.id}",
        subscription_id="s_i",
        status="open",
        amount_due=800,
        amount_paid=0,
        currency="EUR",
        created_at=d.now,
        paid_at=None,
        receipt_url="",
        payment_intent_id=None,
        charge_id=None,
        attempt_count=0,
        billing_reason="subscription_cycle",
    )
    for step, info in enumerate(
        (
            opened,
            # Failed, naming a payment intent another payment holds: not taken from it.
            dataclasses.replace(opened, attempt_count=1, payment_intent_id="pi_gift_1"),
            dataclasses.replace(opened, attempt_count=2, payment_intent_id="pi_states"),
            dataclasses.replace(
                opened,
                status="paid",
                amount_paid=800,
                paid_at=utc(2026, 4, 3),
                attempt_count=3,
                payment_intent_id="pi_states",
                charge_id="ch_states",
                receipt_url="https://pay.example/r",
            ),
        )
    ):
        d.at(utc(2026, 3 + step, 2))
        billing_payments.record_invoice(info)
        db.session.commit()
        rebuilt_matches()
    payment = db.session.scalars(
        sa.select(Payment).where(Payment.stripe_invoice_id == "in_states")
    ).one()
    assert (payment.member_id, payment.subscription_id) == (member.id, subscription.id)
    assert payment.status is PaymentStatus.PAID
    assert (payment.failed_at, payment.paid_at) == (utc(2026, 4, 2), utc(2026, 4, 3))
    assert payment.stripe_payment_intent_id == "pi_states"
    assert (payment.stripe_charge_id, payment.receipt_url) == ("ch_states", "https://pay.example/r")
    # A new invoice naming a payment intent another payment holds is recorded without it.
    taken = dataclasses.replace(opened, id="in_taken", payment_intent_id="pi_gift_1")
    billing_payments.record_invoice(taken)
    db.session.commit()
    payment = db.session.scalars(
        sa.select(Payment).where(Payment.stripe_invoice_id == "in_taken")
    ).one()
    assert payment.stripe_payment_intent_id is None and payment.status is PaymentStatus.PENDING
    rebuilt_matches()


@pytest.mark.postgres_only
def test_a_new_subscription_synced_at_once_is_one_row_counted_once(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent deliveries about a subscription not yet here: one inserts, the rest update."""
    member = make_member()
    db.session.commit()
    d = Driver(monkeypatch).at(utc(2026, 5, 1))
    info = d.subscribe(member, "s_once", amount=600, pay=False)
    db.session.execute(sa.delete(Movement))
    db.session.execute(sa.delete(Subscription))
    rebuild()
    db.session.commit()
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def sync() -> None:
        try:
            with app.app_context():
                barrier.wait()
                billing_subscriptions.sync_subscription(info)
                db.session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sync) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 1
    assert headline.now_figures().mrr == {"EUR": 600}
    kinds = list(db.session.scalars(sa.select(Movement.kind)))
    assert kinds == [MovementKind.NEW]
    rebuilt_matches()
