"""The staff pages of the move: upload, preview and confirm; the progress page and its CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import sqlalchemy as sa
from flask import Flask
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from supporters import audit
from supporters.billing.models import Tier
from supporters.extensions import db
from supporters.members.models import Member, Role
from supporters.patreon import services
from supporters.patreon.cli import read_file
from supporters.patreon.models import ImportedPatron
from tests.factories import make_member, signed_in_client
from tests.helpers import csrf_token, text
from tests.patreon.conftest import EXPORT
from tests.voting.factories import make_subscription


def _figures(page: str) -> dict[str, str]:
    figures = {}
    for name in ("imported", "moved", "entitled", "lapsed", "history"):
        marker = f'data-figure="{name}">'
        start = page.index(marker) + len(marker)
        figures[name] = page[start : page.index("<", start)]
    return figures


def test_an_admin_uploads_previews_then_confirms_an_import(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime
) -> None:
    admin = make_member(role=Role.ADMIN)
    client = signed_in_client(app, admin)
    token = csrf_token(client, "/staff/patreon/import")
    response = client.post(
        "/staff/patreon/import",
        data={"csrf_token": token, "file": (io.BytesIO(EXPORT.read_bytes()), "members.csv")},
        content_type="multipart/form-data",
    )
    page = text(response)
    assert response.status_code == 200, page
    assert "Members created" in page and 'name="map-0"' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportedPatron)) == 0

    key = page.split('name="upload" type="hidden" value="')[1].split('"')[0]
    # The admin maps both Patreon tiers to the €10 tier.
    response = client.post(
        "/staff/patreon/import/confirm",
        data={"csrf_token": token, "upload": key, "map-0": "insider", "map-1": "insider"},
    )
    assert response.status_code == 302, text(response)
    tier_ids = set(db.session.scalars(sa.select(ImportedPatron.tier_id)))
    assert tier_ids == {tiers["insider"]}
    assert _figures(text(client.get("/staff/patreon/"))) == {
        "imported": "4",
        "moved": "0",
        "entitled": "2",
        "lapsed": "0",
        "history": "2",
    }


def test_a_broken_upload_names_its_bad_lines_and_imports_nothing(
    app: Flask, tiers: dict[str, int]
) -> None:
    client = signed_in_client(app, make_member(role=Role.ADMIN))
    token = csrf_token(client, "/staff/patreon/import")
    body = b"Email,Patron Status,Pledge Amount\nok@example.org,Active patron,lots\n"
    response = client.post(
        "/staff/patreon/import",
        data={"csrf_token": token, "file": (io.BytesIO(body), "members.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "line 2: Pledge Amount is not an amount" in text(response)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Member)) == 1


def test_the_upload_accepts_an_export_over_20_mb(app: Flask, tiers: dict[str, int]) -> None:
    client = signed_in_client(app, make_member(role=Role.ADMIN))
    token = csrf_token(client, "/staff/patreon/import")
    header, first = EXPORT.read_text(encoding="utf-8-sig").splitlines()[:2]
    # Columns Patreon might add, and this importer ignores: 21 MB in all.
    extra = 170
    body = (
        header
        + "".join(f",Extra {n}" for n in range(extra))
        + "\n"
        + first
        + ("," + "x" * 125_000) * extra
        + "\n"
    ).encode()
    assert len(body) > 21_000_000
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    boundary, data = encode_multipart(
        {"csrf_token": token, "file": FileStorage(io.BytesIO(body), "members.csv")}
    )
    response = client.post(
        "/staff/patreon/import",
        data=data,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 200
    assert "People in the file" in text(response)


def test_the_progress_page_counts_a_patron_who_moved_over(
    app: Flask, tiers: dict[str, int], import_clock: dt.datetime
) -> None:
    export = read_file(EXPORT)
    services.import_export(export, services.proposed_mapping(export), audit.SYSTEM)
    ada = db.session.scalars(sa.select(Member).where(Member.email == "ada@example.org")).one()
    make_subscription(ada, db.session.get_one(Tier, tiers["insider"]))
    client = signed_in_client(app, make_member(role=Role.STAFF))

    page = text(client.get("/staff/patreon/"))
    assert _figures(page) == {
        "imported": "4",
        "moved": "1",
        "entitled": "1",
        "lapsed": "0",
        "history": "2",
    }
    assert "Insider" in page and "€10.00" in page

    response = client.get("/staff/patreon/not-moved.csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(r["email"] for r in rows) == [
        "alan@example.org",
        "edsger@example.org",
        "grace@example.org",
    ]
    grace = next(r for r in rows if r["email"] == "grace@example.org")
    assert (grace["pledge_amount"], grace["currency"], grace["charge_frequency"]) == (
        "120.00",
        "USD",
        "annual",
    )
