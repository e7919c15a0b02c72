"""Reading the export: dates as Patreon has written them, any column order, few columns."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from flask import Flask

from supporters.patreon.export import ExportError, parse_date, read_export
from supporters.patreon.models import ChargeFrequency, PatronStatus

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01 09:00:03.123456", dt.datetime(2026, 12, 1, 9, 0, 3, 123456, tzinfo=UTC)),
        ("2026-12-01 09:00:03.5", dt.datetime(2026, 12, 1, 9, 0, 3, 500000, tzinfo=UTC)),
        ("2026-12-01 09:00:03", dt.datetime(2026, 12, 1, 9, 0, 3, tzinfo=UTC)),
        ("2026-12-01T09:00:03Z", dt.datetime(2026, 12, 1, 9, 0, 3, tzinfo=UTC)),
        ("2026-12-01T10:00:03+01:00", dt.datetime(2026, 12, 1, 9, 0, 3, tzinfo=UTC)),
        ("2026-12-01", dt.datetime(2026, 12, 1, tzinfo=UTC)),
        ("  ", None),
    ],
)
def test_dates_are_read_as_patreon_writes_them(text: str, expected: dt.datetime | None) -> None:
    assert parse_date(text) == expected


def test_columns_in_any_order_and_only_the_required_ones(app: Flask) -> None:
    export = read_export(
        io.StringIO(
            "Last Charge Status,Charge Frequency,Patron Status,EMAIL,Last Charge Date,Extra\n"
            "Paid,Annual,Active patron, Someone@Example.org ,2026-03-01 10:00:00,x\n"
        ),
        "EUR",
    )
    (row,) = export.rows
    assert (row.email, row.status, row.charge_frequency, row.currency, row.pledge_amount) == (
        "someone@example.org",
        PatronStatus.ACTIVE,
        ChargeFrequency.ANNUAL,
        "EUR",
        0,
    )
    # No next charge date nor access expiration: paid for a year from the last charge.
    assert row.is_paid_up and row.paid_through == dt.datetime(2027, 3, 1, 10, tzinfo=UTC)


def test_a_file_without_the_required_columns_is_refused_at_line_1(app: Flask) -> None:
    with pytest.raises(ExportError, match="line 1: missing column"):
        read_export(io.StringIO("Name,Pledge Amount\nAda,5\n"), "EUR")
