"""Staff accounts: made or promoted from the command line, and what each role may open."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Flask

from supporters.audit import AuditEntry
from supporters.extensions import db
from supporters.members.models import Member, Role
from tests.factories import make_member
from tests.helpers import csrf_token, text


def _create_staff(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["create-staff", *args])
    return result.exit_code, result.output


def test_create_staff_prints_a_link_that_signs_in_once(app: Flask) -> None:
    code, output = _create_staff(app, "Editor@Example.org", "--role", "admin", "--name", "Eda")
    assert code == 0, output
    assert "Created editor@example.org as admin." in output
    link = re.search(r"http://localhost(/sign-in/confirm/\S+)", output)
    assert link

    browser = app.test_client()
    path = link.group(1)
    response = browser.post(path, data={"csrf_token": csrf_token(browser, path)})
    assert response.status_code == 302
    overview = browser.get("/staff/")
    assert overview.status_code == 200 and "Overview" in text(overview)

    again = app.test_client()
    assert again.get(path).status_code == 410
    entry = db.session.scalars(sa.select(AuditEntry)).one()
    assert (entry.action, entry.details) == (
        "member.role_changed",
        {"from": "member", "to": "admin"},
    )


def test_create_staff_promotes_an_existing_member_and_refuses_bad_addresses(app: Flask) -> None:
    member = make_member("reader@example.org")
    db.session.commit()
    code, output = _create_staff(app, "reader@example.org")
    assert code == 0 and "reader@example.org is now staff." in output
    db.session.expire_all()
    assert db.session.get(Member, member.id).role is Role.STAFF  # type: ignore[union-attr]
    code, output = _create_staff(app, "reader@example.org", "--role", "staff")
    assert code == 0 and "already staff" in output

    code, output = _create_staff(app, "not-an-address")
    assert code != 0 and "not a valid email address" in output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Member)) == 1


def test_staff_pages_redirect_visitors_and_refuse_members(app: Flask) -> None:
    visitor = app.test_client()
    response = visitor.get("/staff/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=")

    _, output = _create_staff(app, "plain@example.org")
    db.session.execute(sa.update(Member).values(role=Role.MEMBER))
    db.session.commit()
    member = app.test_client()
    path = re.search(r"http://localhost(\S+)", output).group(1)  # type: ignore[union-attr]
    member.post(path, data={"csrf_token": csrf_token(member, path)})
    assert member.get("/account").status_code == 200
    refused = member.get("/staff/")
    assert refused.status_code == 403 and "Not allowed" in text(refused)


def test_prune_deletes_what_can_never_be_used_again(app: Flask) -> None:
    import datetime as dt

    from supporters.members import services
    from supporters.members.models import MemberSession, SignInRequest

    kept, gone = make_member("kept@example.org"), make_member("gone@example.org")
    live = services.start_session(kept)
    revoked = services.start_session(kept)
    services.start_session(gone)  # outdated by the next line
    services.end_all_sessions(gone)
    services.end_session(revoked.id)
    fresh = services.request_sign_in("kept@example.org")
    old = services.request_sign_in("gone@example.org")
    old.request.expires_at -= dt.timedelta(days=2)
    db.session.commit()
    live_id, fresh_id = live.id, fresh.request.id

    result = app.test_cli_runner().invoke(args=["members", "prune"])
    assert "Deleted 1 expired sign-in request(s) and 2 ended session(s)." in result.output
    db.session.expire_all()
    assert db.session.scalars(sa.select(MemberSession.id)).all() == [live_id]
    assert db.session.scalars(sa.select(SignInRequest.id)).all() == [fresh_id]
