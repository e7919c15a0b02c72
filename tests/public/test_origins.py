"""The allowed sites: cleaned to an origin, checked, audited, and listed on the admin page."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from supporters.audit import AuditEntry
from supporters.extensions import db
from supporters.members.models import Role
from supporters.public.models import EmbedOrigin
from supporters.public.origins import InvalidOrigin, clean_origin
from tests.factories import make_member, signed_in_client
from tests.helpers import csrf_token, text


@pytest.mark.parametrize(
    ("typed", "origin"),
    [
        ("https://news.example", "https://news.example"),
        ("  HTTPS://News.Example/ ", "https://news.example"),
        ("https://news.example:443", "https://news.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_what_an_admin_types_is_cleaned_to_an_origin(typed: str, origin: str) -> None:
    assert clean_origin(typed) == origin


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "Enter the address"),
        ("news.example", "Start the address with https://"),
        ("ftp://news.example", "Start the address with https://"),
        ("javascript://news.example", "Start the address with https://"),
        ("https://news.example/articles", "without a path"),
        ("https://news.example/?a=1", "without a path"),
        ("https://news.example#top", "without a path"),
        ("https://user:pw@news.example", "no user name"),
        ("https://news.example:99999", "port must be a number"),
        ("https://news.example:0", "port must be a number"),
        ("https://", "names no site"),
        ("https://bad_host.example", "not a valid site name"),
        ("https://*.example", "not a valid site name"),
    ],
)
def test_what_is_no_origin_is_refused_with_a_reason(typed: str, why: str) -> None:
    with pytest.raises(InvalidOrigin, match=why):
        clean_origin(typed)


def _audited() -> list[tuple[str, str]]:
    rows = db.session.execute(sa.select(AuditEntry.action, AuditEntry.details)).all()
    return [(action, details["origin"]) for action, details in rows]


def test_admins_add_and_remove_sites_on_the_embeds_page(app: Flask) -> None:
    admin = make_member(role=Role.ADMIN)
    db.session.commit()
    client = signed_in_client(app, admin)
    page = client.get("/staff/embeds")
    assert page.status_code == 200
    assert "frame-src 'self'" in page.headers["Content-Security-Policy"]
    assert text(page).count('class="embed-preview"') == 3
    assert "&lt;iframe src=&#34;http://localhost/embed/goals&#34;" in text(page)

    token = csrf_token(client, "/staff/embeds")
    added = client.post(
        "/staff/embeds", data={"csrf_token": token, "origin": "HTTPS://News.Example/"}
    )
    assert added.status_code == 302
    assert db.session.scalars(sa.select(EmbedOrigin.origin)).all() == ["https://news.example"]

    for typed, why in [
        ("https://news.example", "https://news.example is allowed already."),
        ("https://news.example/page", "without a path"),
    ]:
        refused = client.post("/staff/embeds", data={"csrf_token": token, "origin": typed})
        assert refused.status_code == 400 and why in text(refused)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EmbedOrigin)) == 1

    framed = client.get("/embed/goals").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://news.example;" in framed

    row_id = db.session.scalars(sa.select(EmbedOrigin.id)).one()
    removed = client.post(
        "/staff/embeds/remove", data={"csrf_token": token, "origin_id": str(row_id)}
    )
    assert removed.status_code == 302
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EmbedOrigin)) == 0
    assert (
        "frame-ancestors 'self';" in client.get("/embed/goals").headers["Content-Security-Policy"]
    )
    bad = client.post("/staff/embeds/remove", data={"csrf_token": token, "origin_id": "x"})
    assert bad.status_code == 400
    assert _audited() == [
        ("embed_origin.added", "https://news.example"),
        ("embed_origin.removed", "https://news.example"),
    ]
