"""Reading Patreon's members export: a tolerant parser that checks the whole file first.

Columns are found by name, in any order; extra ones are ignored and only Email and Patron
Status are required. A UTF-8 byte-order mark is skipped. Dates come as Patreon has written them
(``2024-03-01 10:15:00.123456``, without fractional seconds, or a bare date) and are read as
UTC. Amounts are in the major unit of the row's currency. Every bad row is reported with its
line number in the file (the header is line 1) and why, and then nothing is imported.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
from typing import IO

from flask_babel import gettext as _

from supporters.billing.models import add_months
from supporters.members.services import InvalidEmail, normalize_email
from supporters.money import AmountError, parse_amount
from supporters.patreon.models import PATREON_TIER_MAX_LENGTH, ChargeFrequency, PatronStatus

# Our field for each column name Patreon has used (compared lower-cased, spaces collapsed).
COLUMNS = {
    "name": "name",
    "email": "email",
    "patron status": "status",
    "pledge amount": "pledge_amount",
    "charge frequency": "charge_frequency",
    "tier": "tier",
    "patronage since date": "patronage_since_at",
    "last charge date": "last_charge_at",
    "last charge status": "last_charge_status",
    "next charge date": "next_charge_at",
    "lifetime amount": "lifetime_amount",
    "currency": "currency",
    "user id": "patreon_user_id",
    "access expiration": "access_expires_at",
}
REQUIRED = ("email", "status")
DATE_FIELDS = ("patronage_since_at", "last_charge_at", "next_charge_at", "access_expires_at")
_STATUSES = {
    "active patron": PatronStatus.ACTIVE,
    "active": PatronStatus.ACTIVE,
    "declined patron": PatronStatus.DECLINED,
    "declined": PatronStatus.DECLINED,
    "former patron": PatronStatus.FORMER,
    "former": PatronStatus.FORMER,
}
_FREQUENCIES = {
    "": ChargeFrequency.MONTHLY,
    "monthly": ChargeFrequency.MONTHLY,
    "month": ChargeFrequency.MONTHLY,
    "annual": ChargeFrequency.ANNUAL,
    "annually": ChargeFrequency.ANNUAL,
    "yearly": ChargeFrequency.ANNUAL,
    "year": ChargeFrequency.ANNUAL,
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Currency signs and codes Patreon may put beside an amount.
_AMOUNT_NOISE = re.compile(r"[^\d.,\-]")


@dataclasses.dataclass(frozen=True)
class PatreonRow:
    """One row of the export, read and checked."""

    line: int
    email: str
    name: str
    status: PatronStatus
    pledge_amount: int
    currency: str
    charge_frequency: ChargeFrequency
    tier: str
    patronage_since_at: dt.datetime | None
    last_charge_at: dt.datetime | None
    last_charge_status: str
    next_charge_at: dt.datetime | None
    lifetime_amount: int
    patreon_user_id: str
    access_expires_at: dt.datetime | None

    @property
    def is_paid_up(self) -> bool:
        """An active patron whose last charge went through: entitled until their period ends."""
        return self.status is PatronStatus.ACTIVE and self.last_charge_status.lower() == "paid"

    @property
    def paid_through(self) -> dt.datetime | None:
        """When the period paid for ends: Patreon's next charge, or the access expiration;
        failing both, a month (a year, for an annual pledge) after the last charge."""
        ends = [d for d in (self.next_charge_at, self.access_expires_at) if d is not None]
        if ends:
            return max(ends)
        if self.last_charge_at is None:
            return None
        months = 12 if self.charge_frequency is ChargeFrequency.ANNUAL else 1
        return add_months(self.last_charge_at, months)

    @property
    def monthly_pledge(self) -> int:
        if self.charge_frequency is ChargeFrequency.ANNUAL:
            return self.pledge_amount // 12
        return self.pledge_amount

    def rank(self) -> tuple[int, int, dt.datetime]:
        """Which of one person's rows stands for them: paid up, then active, then most recent."""
        latest = (
            self.last_charge_at or self.patronage_since_at or dt.datetime.min.replace(tzinfo=dt.UTC)
        )
        return (int(self.is_paid_up), int(self.status is PatronStatus.ACTIVE), latest)


@dataclasses.dataclass(frozen=True)
class BadLine:
    """A line that cannot be imported, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return str(_("line %(line)d: %(message)s", line=self.line, message=self.message))


class ExportError(Exception):
    """The file cannot be imported: every bad line is in ``errors``; nothing was written."""

    def __init__(self, errors: list[BadLine]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclasses.dataclass(frozen=True)
class Export:
    """A checked export: one row per person (the best of their rows), and how many lines."""

    rows: list[PatreonRow]
    lines: int  # data rows read, duplicates included

    @property
    def duplicates(self) -> int:
        return self.lines - len(self.rows)


def parse_date(text: str) -> dt.datetime | None:
    """A date as Patreon writes it, in UTC; None for an empty cell.

    :raises ValueError: a date that cannot be read.
    """
    text = text.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _amount(text: str, currency: str) -> int:
    cleaned = _AMOUNT_NOISE.sub("", text)
    if "." in cleaned:
        cleaned = cleaned.replace(",", "")  # thousands separators: 1,200.00
    if not cleaned:
        if text.strip():
            raise AmountError(text)
        return 0
    return parse_amount(cleaned, currency)


def _header(fields: list[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, raw in enumerate(fields):
        name = " ".join(raw.replace("\ufeff", "").split()).lower()
        if name in COLUMNS and COLUMNS[name] not in positions:
            positions[COLUMNS[name]] = index
    return positions


def _read_row(
    line: int, cells: list[str], positions: dict[str, int], default_currency: str
) -> PatreonRow | list[BadLine]:
    def get(field: str) -> str:
        index = positions.get(field)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    errors: list[BadLine] = []
    email = ""
    try:
        email = normalize_email(get("email"))
    except InvalidEmail:
        errors.append(
            BadLine(line, _("no email address") if not get("email") else _("bad email address"))
        )
    status = _STATUSES.get(" ".join(get("status").lower().split()))
    if status is None:
        errors.append(BadLine(line, _("unknown patron status %(status)r", status=get("status"))))
    currency = (get("currency") or default_currency).upper()
    if not _CURRENCY.match(currency):
        errors.append(BadLine(line, _("bad currency %(currency)r", currency=get("currency"))))
        currency = default_currency
    amounts: dict[str, int] = {}
    for field, label in (
        ("pledge_amount", _("Pledge Amount")),
        ("lifetime_amount", _("Lifetime Amount")),
    ):
        try:
            amounts[field] = _amount(get(field), currency)
        except AmountError:
            errors.append(
                BadLine(
                    line,
                    _("%(column)s is not an amount: %(value)r", column=label, value=get(field)),
                )
            )
    dates: dict[str, dt.datetime | None] = {}
    for field in DATE_FIELDS:
        try:
            dates[field] = parse_date(get(field))
        except ValueError:
            column = next(name for name, f in COLUMNS.items() if f == field).title()
            errors.append(
                BadLine(
                    line, _("%(column)s is not a date: %(value)r", column=column, value=get(field))
                )
            )
    frequency = _FREQUENCIES.get(get("charge_frequency").lower())
    if frequency is None:
        errors.append(
            BadLine(line, _("unknown charge frequency %(value)r", value=get("charge_frequency")))
        )
    if errors:
        return errors
    assert status is not None and frequency is not None
    return PatreonRow(
        line=line,
        email=email,
        name=get("name")[:80],
        status=status,
        pledge_amount=amounts["pledge_amount"],
        currency=currency,
        charge_frequency=frequency,
        tier=get("tier")[:PATREON_TIER_MAX_LENGTH],
        last_charge_status=get("last_charge_status")[:32],
        lifetime_amount=amounts["lifetime_amount"],
        patreon_user_id=get("patreon_user_id")[:64],
        **dates,
    )


def read_export(stream: IO[str], default_currency: str) -> Export:
    """Read and check a whole export; one row per person (their addresses compared lower-cased).

    :raises ExportError: a missing required column, or bad rows (each named by its line).
    """
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise ExportError([BadLine(1, _("the file is empty"))]) from None
    except csv.Error as exc:
        raise ExportError([BadLine(1, str(exc))]) from None
    positions = _header(header)
    missing = [f for f in REQUIRED if f not in positions]
    if missing:
        names = ", ".join(n.title() for n, f in COLUMNS.items() if f in missing)
        raise ExportError([BadLine(1, _("missing column(s): %(names)s", names=names))])
    errors: list[BadLine] = []
    best: dict[str, PatreonRow] = {}
    lines = 0
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(BadLine(line, str(exc)))
            break
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue  # a blank line
        lines += 1
        result = _read_row(start, cells, positions, default_currency)
        if isinstance(result, list):
            errors.extend(result)
            continue
        kept = best.get(result.email)
        if kept is None or result.rank() > kept.rank():
            best[result.email] = result
    if errors:
        raise ExportError(errors)
    return Export(sorted(best.values(), key=lambda r: r.line), lines)
