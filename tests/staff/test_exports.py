"""CSV downloads: the filtered members list, payments for a date range, every report table."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from supporters import downloads
from supporters.extensions import db
from supporters.members.models import Member, Role
from supporters.staff import exports, member_list
from supporters.staff.queries import monthly
from tests.factories import make_member, signed_in_client
from tests.staff.driver import Driver, utc


def rows_of(response: TestResponse) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def staff_client(app: Flask, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    staff = make_member("staff@example.org", role=Role.STAFF, display_name="Staff")
    members = [
        make_member("alma@example.org", display_name="Alma"),
        make_member("boris@example.org", display_name="=cmd|' /C calc'!A0"),
        make_member("chen@example.org", display_name="Chen"),
    ]
    db.session.commit()
    d = Driver(monkeypatch)
    d.at(utc(2026, 1, 31, 23, 59)).subscribe(members[0], "s_alma", amount=1250)
    d.at(utc(2026, 2, 1, 0, 0)).subscribe(members[1], "s_boris", amount=24000, interval="year")
    invoice = d.at(utc(2026, 2, 28, 23, 59)).invoice("s_alma")
    d.refund(invoice.id, 250)
    d.at(utc(2026, 3, 1)).invoice("s_alma", paid=False)
    d.at(utc(2026, 3, 2)).gift(members[2], 500, "USD")
    boris_first = next(i for i in d.invoices.values() if i.subscription_id == "s_boris")
    d.dispute(boris_first.id, "dp_boris", amount=6000)
    d.dispute(boris_first.id, "dp_boris", status="lost")
    d.at(utc(2026, 3, 5))
    return signed_in_client(app, staff)


def test_members_export_follows_the_filters(app: Flask, staff_client: FlaskClient) -> None:
    rows = rows_of(staff_client.get("/staff/members.csv?status=active&sort=email", buffered=True))
    assert [r["email"] for r in rows] == ["alma@example.org", "boris@example.org"]
    alma, boris = rows
    assert (alma["amount"], alma["currency"], alma["interval"], alma["tier"]) == (
        "12.50",
        "EUR",
        "month",
        "custom",
    )
    assert boris["amount"] == "240.00" and boris["interval"] == "year"
    # A name that a spreadsheet would run as a formula is defused.
    assert boris["name"] == "'=cmd|' /C calc'!A0"
    everyone = rows_of(staff_client.get("/staff/members.csv?sort=oldest", buffered=True))
    assert len(everyone) == 4
    assert everyone[0]["subscription_status"] == ""  # staff: never subscribed


def test_members_export_walks_the_table_in_chunks(
    app: Flask,
    staff_client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(9):
        make_member(f"extra{n}@example.org")
    db.session.commit()
    monkeypatch.setattr(member_list, "EXPORT_CHUNK", 2)
    filters = member_list.MemberFilter(sort="name")
    exported = [member.id for member, _ in member_list.iter_members(filters, chunk=2)]
    listed = [m.id for m in db.session.scalars(db.select(Member).order_by(*filters.order))]
    assert exported == listed and len(exported) == 13


def test_payments_export_for_a_date_range(app: Flask, staff_client: FlaskClient) -> None:
    rows = rows_of(
        staff_client.get(
            "/staff/payments.csv?date_from=2026-02-01&date_to=2026-02-28", buffered=True
        )
    )
    # Boris's first invoice (1 Feb, 00:00) and Alma's renewal (28 Feb, 23:59); not Alma's first.
    assert [
        (r["email"], r["amount"], r["refunded"], r["lost_to_disputes"], r["status"]) for r in rows
    ] == [
        ("boris@example.org", "240.00", "0.00", "60.00", "paid"),
        ("alma@example.org", "12.50", "2.50", "0.00", "paid"),
    ]
    march = rows_of(
        staff_client.get(
            "/staff/payments.csv?date_from=2026-03-01&date_to=2026-03-31", buffered=True
        )
    )
    assert [(r["kind"], r["status"], r["currency"]) for r in march] == [
        ("subscription", "failed", "EUR"),
        ("one_time", "paid", "USD"),
    ]
    bad = staff_client.get("/staff/payments.csv?date_from=2026-03-01&date_to=2026-02-01")
    assert bad.status_code == 400
    assert "The end date is before the start date." in bad.get_data(as_text=True)


def test_payments_export_goes_past_one_chunk(
    app: Flask,
    staff_client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exports, "PAYMENT_CHUNK", 1)
    rows = list(exports.payment_rows(dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
    assert len(rows) == 5
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)


def test_every_report_downloads_with_the_page_figures(
    app: Flask, staff_client: FlaskClient
) -> None:
    for name in exports.DATASETS:
        rows = rows_of(staff_client.get(f"/staff/reports/{name}.csv", buffered=True))
        assert list(rows[0].keys()) == list(exports.DATASETS[name].header) if rows else True
    patrons = rows_of(staff_client.get("/staff/reports/patrons.csv", buffered=True))
    by_month = {r["month"]: r for r in patrons}
    expected = monthly.patron_months(monthly.last_months(exports.MONTHS_SHOWN))
    for month in expected:
        row = by_month[month.start.isoformat()]
        assert int(row["patrons_at_end"]) == month.patrons_at_end
        assert int(row["new"]) == month.new
    revenue = rows_of(staff_client.get("/staff/reports/revenue.csv", buffered=True))
    feb = next(r for r in revenue if r["month"] == "2026-02-01" and r["currency"] == "EUR")
    assert (feb["mrr_new"], feb["mrr_at_end"], feb["subscription_payments"]) == (
        "20.00",  # Boris's €240 a year
        "32.50",
        "252.50",
    )
    assert (feb["refunded"], feb["lost_to_disputes"], feb["received_net"]) == (
        "2.50",
        "60.00",  # Boris's bank took €60 of his €240 back
        "190.00",
    )
    assert staff_client.get("/staff/reports/nothing.csv").status_code == 404


def test_downloads_are_streamed(app: Flask) -> None:
    with app.test_request_context():
        response = downloads.stream_csv("x.csv", ["a"], iter([[1], [2]]))
        assert response.is_streamed
        assert response.get_data(as_text=True) == "a\r\n1\r\n2\r\n"


def test_cells() -> None:
    assert downloads.cell("+1 555") == "'+1 555"
    assert downloads.cell("@SUM(A1)") == "'@SUM(A1)"
    assert downloads.cell("Olena") == "Olena"
    assert downloads.cell(-5) == -5
    assert downloads.cell(utc(2026, 1, 2, 3)) == "2026-01-02T03:00:00+00:00"
    assert downloads.cell(None) == ""
