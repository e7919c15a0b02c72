"""Importing Patreon's members export from the command line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from supporters.audit import AuditEntry
from supporters.billing.grant_models import Grant, GrantSource
from supporters.billing.membership import MembershipStatus, membership_of
from supporters.extensions import db
from supporters.members.models import Member
from supporters.patreon.models import ChargeFrequency, ImportedPatron, PatronStatus, TierMapping
from tests.patreon.conftest import EXPORT, EXPORTED_AT

UTC = dt.UTC


def _import(app: Flask, path: Path, *options: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["import", "patreon", str(path), *options])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    db.session.remove()
    return result.exit_code, result.output


def _patrons() -> dict[str, ImportedPatron]:
    rows = db.session.scalars(sa.select(ImportedPatron).join(Member)).all()
    return {p.member.email: p for p in rows}


def _count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def test_an_export_in_patreons_shape_imports_as_expected(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime
) -> None:
    db.session.commit()
    code, output = _import(app, EXPORT, "--yes")
    assert code == 0, output
    assert "Members created: 4" in output and "Repeated rows merged: 1" in output

    patrons = _patrons()
    assert sorted(patrons) == [
        "ada@example.org",
        "alan@example.org",
        "edsger@example.org",
        "grace@example.org",
    ]
    ada, grace = patrons["ada@example.org"], patrons["grace@example.org"]
    # The active row stands for Ada, not her older one in another case.
    assert (ada.status, ada.pledge_amount, ada.currency, ada.patreon_user_id) == (
        PatronStatus.ACTIVE,
        500,
        "EUR",
        "1001",
    )
    assert ada.patronage_since_at == dt.datetime(2025, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert ada.last_charge_at == dt.datetime(2026, 12, 1, 9, 0, 3, 500000, tzinfo=UTC)
    assert ada.tier_id == tiers["reader"]
    assert (grace.charge_frequency, grace.pledge_amount, grace.currency) == (
        ChargeFrequency.ANNUAL,
        12000,
        "USD",
    )
    assert grace.lifetime_amount == 120000
    assert grace.tier_id == tiers["insider"]  # $120 a year is $10 a month: the €10 tier

    # Paid-up active patrons are entitled via Patreon until Patreon would charge them next.
    assert ada.grant is not None and grace.grant is not None
    assert (ada.grant.source, ada.grant.tier_id, ada.grant.ends_at) == (
        GrantSource.PATREON,
        tiers["reader"],
        dt.datetime(2027, 1, 1, 9, 0, tzinfo=UTC),
    )
    assert grace.grant.ends_at == dt.datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
    soon = EXPORTED_AT + dt.timedelta(days=1)
    assert membership_of(ada.member_id, soon) is MembershipStatus.GRANTED
    assert membership_of(ada.member_id, dt.datetime(2027, 1, 2, tzinfo=UTC)) is (
        MembershipStatus.NONE
    )
    # Declined and former patrons come with their history and no entitlement.
    for email in ("alan@example.org", "edsger@example.org"):
        assert patrons[email].grant is None
        assert membership_of(patrons[email].member_id, soon) is MembershipStatus.NONE
    assert patrons["edsger@example.org"].access_expires_at == dt.datetime(
        2025, 6, 1, 10, 0, tzinfo=UTC
    )
    assert {(m.patreon_tier, m.tier_id) for m in db.session.scalars(sa.select(TierMapping))} == {
        ("Reader", tiers["reader"]),
        ("Insider", tiers["insider"]),
    }


def test_a_dry_run_writes_nothing(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime
) -> None:
    db.session.commit()
    code, output = _import(app, EXPORT, "--dry-run")
    assert code == 0, output
    assert "Members created: 4" in output and "Dry run: nothing was written." in output
    assert (_count(Member), _count(ImportedPatron), _count(Grant), _count(AuditEntry)) == (
        0,
        0,
        0,
        0,
    )


def test_without_yes_it_asks_first(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime
) -> None:
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["import", "patreon", str(EXPORT)], input="n\n")
    db.session.remove()
    assert "Apply these changes?" in result.output and _count(Member) == 0


def test_a_reimport_changes_nothing_and_a_newer_export_updates_what_changed(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime, tmp_path: Path
) -> None:
    db.session.commit()
    assert _import(app, EXPORT, "--yes")[0] == 0
    before = {e: (p.updated_at, p.grant_id) for e, p in _patrons().items()}

    code, output = _import(app, EXPORT, "--yes")
    assert code == 0 and "Nothing to change" in output, output
    assert {e: (p.updated_at, p.grant_id) for e, p in _patrons().items()} == before
    assert (_count(Member), _count(Grant), _count(AuditEntry)) == (4, 2, 1)

    # A month later Ada was charged again; Grace's card was declined.
    newer = tmp_path / "newer.csv"
    text = EXPORT.read_text(encoding="utf-8-sig")
    text = text.replace("2026-12-01 09:00:03.5,Paid", "2027-01-01 09:00:02,Paid").replace(
        "EUR,,,2027-01-01 09:00:00", "EUR,,,2027-02-01 09:00:00"
    )
    text = text.replace(
        "Grace Hopper,grace@example.org,,,Active patron",
        "Grace Hopper,grace@example.org,,,Declined patron",
    )
    newer.write_text(text, encoding="utf-8-sig")
    code, output = _import(app, newer, "--yes")
    assert code == 0, output
    assert "Patreon records updated: 2" in output and "Patreon records unchanged: 2" in output
    patrons = _patrons()
    ada, grace = patrons["ada@example.org"], patrons["grace@example.org"]
    assert ada.grant is not None and ada.grant.ends_at == dt.datetime(2027, 2, 1, 9, tzinfo=UTC)
    assert grace.status is PatronStatus.DECLINED
    assert grace.grant is not None and grace.grant.ends_at == EXPORTED_AT  # ended: not paid up
    assert _count(Member) == 4


def test_a_broken_file_imports_nothing_and_names_its_bad_lines(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime, tmp_path: Path
) -> None:
    db.session.commit()
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "Email,Patron Status,Pledge Amount,Last Charge Date,Currency\n"
        "good@example.org,Active patron,5.00,2026-12-01 10:00:00,EUR\n"
        ",Active patron,5.00,2026-12-01 10:00:00,EUR\n"
        "five@example.org,Active patron,five,2026-12-01 10:00:00,EUR\n"
        "when@example.org,Former patron,5.00,yesterday,EUR\n",
        encoding="utf-8",
    )
    code, output = _import(app, broken, "--yes")
    assert code != 0
    assert "line 3: no email address" in output
    assert "line 4: Pledge Amount is not an amount: 'five'" in output
    assert "line 5: Last Charge Date is not a date: 'yesterday'" in output
    assert "line 2" not in output
    assert (_count(Member), _count(ImportedPatron)) == (0, 0)
