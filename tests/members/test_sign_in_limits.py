"""How many sign-in messages one inbox gets: every spelling and every form share one count,
only messages that are sent count, and the database holds the cap when the limiter forgets."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from supporters.extensions import db, limiter
from supporters.members.models import SignInRequest
from tests.factories import make_member, make_tier, signed_in_client
from tests.helpers import csrf_token, submit, text
from tests.smtp import MailServer

# One inbox, spelled as email_validator folds it: case, and full-width letters in the domain.
SPELLINGS = [
    "name@example.com",
    "Name@Example.COM",
    "name@\uff45xample.com",
    "name@e\uff58ample.com",
    "name@ex\uff41mple.com",
    "NAME@EXAMPLE.\uff23\uff2f\uff2d",
]


def _requests_stored() -> int:
    db.session.expire_all()
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(SignInRequest)) or 0)


def _ask(client: FlaskClient, page: str, email: str) -> TestResponse:
    """Ask for a message from one of the forms that send one."""
    if page == "/support":
        return submit(client, "/", action="/support", tier="reader", interval="month", email=email)
    return submit(client, page, email=email)


def test_every_spelling_and_every_form_share_one_limit(
    make_app: Any, mail_server: MailServer
) -> None:
    app: Flask = make_app(SIGN_IN_LIMIT_PER_EMAIL="3 per hour", SIGN_IN_LIMIT_PER_IP="100 per hour")
    with app.app_context():
        make_tier("reader")
        member = make_member("hal@example.org")
        db.session.commit()
        pages = ["/sign-in", "/join", "/support", "/sign-in", "/join", "/support"]
        answers = [
            _ask(app.test_client(), page, email)
            for page, email in zip(pages, SPELLINGS, strict=True)
        ]
        assert [a.status_code for a in answers] == [302, 302, 302, 429, 429, 429]
        assert len(mail_server.to("name@example.com")) == 3
        assert _requests_stored() == 3
        refused = answers[-1]
        assert "as many messages to this address as we can" in text(refused)
        assert 'aria-invalid="true"' in text(refused)  # on the form, with the reader's choice
        assert 0 < int(refused.headers["Retry-After"]) <= 3600

        # A member moving their account to that address asks for a message to it too.
        client = signed_in_client(app, member)
        moved = submit(client, "/account", action="/account/email", email=SPELLINGS[1])
        assert moved.status_code == 429
        assert "as many messages to this address as we can" in text(moved)
        assert len(mail_server.to("name@example.com")) == 3
        assert _requests_stored() == 3


def test_the_database_holds_the_cap_when_the_limiter_forgets(
    make_app: Any, mail_server: MailServer
) -> None:
    app: Flask = make_app(SIGN_IN_LIMIT_PER_EMAIL="3 per hour")
    statuses = []
    for email in SPELLINGS:
        # As after a restart of the limiter's storage, or with workers that each count alone.
        limiter.reset()
        statuses.append(_ask(app.test_client(), "/sign-in", email).status_code)
    assert statuses == [302, 302, 302, 429, 429, 429]
    assert len(mail_server.to("name@example.com")) == 3


@pytest.mark.parametrize(
    ("page", "typos"),
    [
        (
            "/support",
            [
                {"tier": "custom", "amount": amount, "interval": "month"}
                for amount in ("2", "abc", "-5", "99999999", "")
            ],
        ),
        ("/join", [{"display_name": "n" * 81}] * 5),
    ],
)
def test_forms_that_fail_validation_count_nothing(
    app: Flask, mail_server: MailServer, page: str, typos: list[dict[str, str]]
) -> None:
    make_tier("reader")
    db.session.commit()
    client = app.test_client()
    form_page, action = ("/", "/support") if page == "/support" else (page, page)
    for typo in typos:
        response = submit(
            client, form_page, action=action, **{"email": "reader@example.org", **typo}
        )
        assert response.status_code == 400
    # The reader fixes the typo: their donation or sign-in goes through.
    response = _ask(client, page, "reader@example.org")
    assert response.status_code == 302, text(response)
    assert response.headers["Location"] == "/sign-in/code"
    assert len(mail_server.to("reader@example.org")) == 1


def test_requests_at_the_same_moment_cannot_pass_the_cap_together(
    make_app: Any, mail_server: MailServer
) -> None:
    browsers = 8
    # Without the limiter's own count, the database alone decides between concurrent requests.
    app: Flask = make_app(
        RATELIMIT_ENABLED=False,
        SIGN_IN_LIMIT_PER_EMAIL="3 per hour",
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": browsers + 2, "max_overflow": 0},
    )
    clients = [app.test_client() for _ in range(browsers)]
    tokens = [csrf_token(client, "/sign-in") for client in clients]
    start = threading.Barrier(browsers)
    statuses: list[int] = []

    def ask(index: int) -> None:
        start.wait(timeout=30)
        response = clients[index].post(
            "/sign-in", data={"csrf_token": tokens[index], "email": SPELLINGS[index % 6]}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(browsers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [302] * 3 + [429] * (browsers - 3)
    with app.app_context():
        assert _requests_stored() == 3
        db.session.remove()
    assert len(mail_server.to("name@example.com")) == 3


def test_pruning_keeps_what_the_limit_still_counts(make_app: Any, mail_server: MailServer) -> None:
    app: Flask = make_app(SIGN_IN_LIMIT_PER_EMAIL="2 per 7 days")
    with app.app_context():
        for _ in range(2):
            assert _ask(app.test_client(), "/sign-in", "name@example.com").status_code == 302
        for row in db.session.scalars(sa.select(SignInRequest)):
            row.created_at -= dt.timedelta(days=3)
            row.expires_at -= dt.timedelta(days=3)
        db.session.commit()
        assert app.test_cli_runner().invoke(args=["members", "prune"]).exit_code == 0
        assert _requests_stored() == 2
        limiter.reset()
        assert _ask(app.test_client(), "/sign-in", "name@example.com").status_code == 429
        db.session.remove()
