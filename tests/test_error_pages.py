"""Error pages after a write failed mid-request: the app's own page, rendered without the database."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask import Flask, abort

from supporters.extensions import db
from supporters.members import services as member_services
from supporters.members.models import Member, MemberSession
from tests.browser.conftest import LiveServer
from tests.factories import make_member, signed_in_client
from tests.helpers import text

_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def _signed_in(app: Flask, member: Member) -> requests.Session:
    """A browser (of the live server on 127.0.0.1) with a fresh session for the member."""
    row = member_services.start_session(member, user_agent="tests")
    db.session.commit()
    cookie = app.session_interface.get_signing_serializer(app).dumps(  # type: ignore[attr-defined]
        {"_user_id": row.id, "_fresh": True, "_permanent": True}
    )
    browser = requests.Session()
    browser.cookies.set(app.config["SESSION_COOKIE_NAME"], cookie, domain="127.0.0.1")
    return browser


def _backend_waiting_on_a_lock(statement: str, timeout: float = 10) -> int:
    """The PostgreSQL backend whose ``statement`` waits for a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.engine.connect() as connection:
            pid = connection.scalar(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE :statement"
                ),
                {"statement": f"{statement}%"},
            )
        if pid is not None:
            return int(pid)
        time.sleep(0.05)
    raise AssertionError(f"no backend waits on a lock for {statement!r}")


@pytest.mark.parametrize(
    ("outcome", "status", "title"),
    [("crash", 500, "Something went wrong"), ("refuse", 409, "Conflict")],
)
def test_a_failed_write_leaves_a_page_that_needs_no_database(
    make_app: Any, outcome: str, status: int, title: str
) -> None:
    """A signed-in request whose flush fails, then crashes or answers 4xx: the app's own page."""
    app: Flask = make_app(TESTING=False)

    @app.get("/write-twice")
    def write_twice() -> str:
        try:
            make_member("taken@example.org")  # the address is someone's already
        except sa.exc.IntegrityError:
            if outcome == "refuse":
                abort(409)
            raise
        return "written"

    with app.app_context():
        make_member("taken@example.org")
        client = signed_in_client(app, make_member(display_name="Ada"))
        response = client.get("/write-twice")
        assert response.status_code == status
        assert f"<title>{title} · The Test Gazette</title>" in text(response)
        assert response.headers["Cache-Control"] == "no-store"
        # The member is still signed in on the next page.
        assert "Your account" in text(client.get("/polls/"))


def test_a_failed_statements_values_stay_out_of_the_log(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The database fails a signed-in request's session lookup: logged, without the session id."""
    app: Flask = make_app(TESTING=False)
    caplog.set_level(logging.DEBUG)

    def break_session_lookup(*args: Any) -> tuple[str, Any]:
        statement, parameters = args[2], args[3]
        return statement.replace("member_sessions", "no_such_table"), parameters

    with app.app_context():
        client = signed_in_client(app, make_member())
        session_id = db.session.scalar(sa.select(MemberSession.id))
        assert session_id
        sa.event.listen(db.engine, "before_cursor_execute", break_session_lookup, retval=True)
        try:
            response = client.get("/account")
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", break_session_lookup)
    assert response.status_code == 500
    assert "no_such_table" in caplog.text  # the failure is in the log, with its statement
    assert session_id not in caplog.text


@pytest.mark.postgres_only
def test_a_write_whose_connection_drops_gets_the_apps_own_error_page(make_app: Any) -> None:
    app: Flask = make_app(TESTING=False)
    server = LiveServer(app)
    server.start()
    try:
        with app.app_context():
            member = make_member(display_name="Ada")
            browser = _signed_in(app, member)
            page = browser.get(f"{server.url}/account")
            assert page.status_code == 200
            token = _CSRF.search(page.text)
            assert token is not None

            # Another connection holds the member's row, so the profile's UPDATE waits on it.
            with db.engine.connect() as holder:
                holder.execute(
                    sa.text("SELECT id FROM members WHERE id = :id FOR UPDATE"), {"id": member.id}
                )
                answer: dict[str, requests.Response] = {}
                post = threading.Thread(
                    target=lambda: answer.setdefault(
                        "response",
                        browser.post(
                            f"{server.url}/account/profile",
                            data={"csrf_token": token.group(1), "display_name": "Grace"},
                            timeout=30,
                        ),
                    )
                )
                post.start()
                waiting = _backend_waiting_on_a_lock("UPDATE members")
                with db.engine.connect() as admin:
                    admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting})
                post.join(timeout=30)
                holder.rollback()

            response = answer["response"]
            assert response.status_code == 500
            assert "<title>Something went wrong · The Test Gazette</title>" in response.text
            assert 'href="/static/css/site.css"' in response.text
            assert "nothing was changed" in response.text
            db.session.expire_all()
            assert db.session.get(Member, member.id).display_name == "Ada"  # type: ignore[union-attr]
    finally:
        server.stop()
