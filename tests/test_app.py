"""Start-up settings, headers on every response, error pages, health check, money formatting."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, abort
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from supporters import create_app
from supporters.config import ConfigError
from supporters.extensions import db
from supporters.members.models import Member
from supporters.money import AmountError, format_money, parse_amount
from tests.conftest import IsolatedClient, is_postgres
from tests.factories import make_tier
from tests.helpers import PRODUCTION, csrf_token, submit, text
from tests.smtp import MailServer, sign_in_code, sign_in_link


def test_development_starts_with_no_settings_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORTERS_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app()
    assert (
        app.config["SQLALCHEMY_DATABASE_URI"]
        == f"sqlite:///{tmp_path / 'instance' / 'supporters.sqlite3'}"
    )
    assert app.config["SECRET_KEY"]
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_environment_variables_configure_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORTERS_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("SUPPORTERS_SITE_NAME", "Kyiv Independent Desk")
    monkeypatch.setenv("SUPPORTERS_CURRENCY", "uah")
    monkeypatch.setenv("SUPPORTERS_STRIPE_WEBHOOK_SECRET", "whsec_old, whsec_new")
    monkeypatch.setenv("SUPPORTERS_DATABASE_URL", "postgresql://db.internal/news")
    app = create_app()
    assert app.config["SITE_NAME"] == "Kyiv Independent Desk"
    assert app.config["CURRENCY"] == "UAH"
    assert app.config["STRIPE_WEBHOOK_SECRET"] == ["whsec_old", "whsec_new"]
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db.internal/news"


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"BASE_URL": "https://news.example"}, "SUPPORTERS_SECRET_KEY must be set"),
        ({"SECRET_KEY": "x" * 40, "BASE_URL": "http://news.example"}, "BASE_URL must use https://"),
        ({"SECRET_KEY": "short", "BASE_URL": "https://news.example"}, "at least 32 characters"),
        ({"SECRET_KEY": "x" * 40, "BASE_URL": "https://n.example"}, "demo checkout moves no money"),
        (
            {
                "SECRET_KEY": "x" * 40,
                "BASE_URL": "https://n.example",
                "STRIPE_SECRET_KEY": "sk_live_x",
                "STRIPE_WEBHOOK_SECRET": "whsec_x",
            },
            "SMTP_HOST must be set in production",
        ),
    ],
)
def test_production_refuses_insecure_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], complaint: str
) -> None:
    monkeypatch.setenv("SUPPORTERS_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("SUPPORTERS_ENV", "production")
    for key, value in settings.items():
        monkeypatch.setenv(f"SUPPORTERS_{key}", value)
    with pytest.raises(ConfigError, match=complaint):
        create_app()


def test_production_sets_secure_cookies_and_hsts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORTERS_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("SUPPORTERS_ENV", "production")
    monkeypatch.setenv("SUPPORTERS_SECRET_KEY", "p" * 48)
    monkeypatch.setenv("SUPPORTERS_BASE_URL", "https://news.example")
    monkeypatch.setenv("SUPPORTERS_STRIPE_SECRET_KEY", "sk_live_x")
    monkeypatch.setenv("SUPPORTERS_STRIPE_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("SUPPORTERS_SMTP_HOST", "smtp.news.example")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    with app.app_context():
        db.create_all()
    response = app.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_every_page_carries_the_security_headers(client: FlaskClient) -> None:
    for path in ("/", "/sign-in", "/no-such-page"):
        headers = client.get(path).headers
        csp = dict(
            part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
        )
        assert csp["script-src"] == csp["style-src"] == "'self'"  # nothing from another host
        assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
        # Only where a form leads to Stripe's own checkout may it post beyond this site.
        assert csp["form-action"] in (
            "'self'",
            "'self' https://checkout.stripe.com https://billing.stripe.com",
        )
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers  # development serves plain HTTP


def test_pages_load_nothing_from_other_hosts(client: FlaskClient) -> None:
    for path in ("/", "/sign-in", "/join", "/polls/"):
        page = text(client.get(path))
        assert 'src="http' not in page and 'href="http' not in page.replace(
            'href="http://localhost', ""
        )


def test_error_pages_never_show_a_traceback(make_app: Any) -> None:
    app: Flask = make_app(TESTING=False)

    @app.get("/explode")
    def explode() -> str:
        raise RuntimeError("secret internals")

    client = app.test_client()
    response = client.get("/explode")
    assert response.status_code == 500
    assert "Something went wrong" in text(response)
    assert "secret internals" not in text(response) and "Traceback" not in text(response)
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "Page not found" in text(missing)


def test_forbidden_page_is_explained(make_app: Any) -> None:
    app: Flask = make_app()

    @app.get("/locked")
    def locked() -> str:
        abort(403)

    response = app.test_client().get("/locked")
    assert response.status_code == 403 and "Not allowed" in text(response)


def test_healthz_reports_the_database(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok", "database": "ok"}
    broken = create_app(
        {"TESTING": True, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"}
    )
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "error", "database": "unreachable"}


@pytest.mark.skipif(is_postgres(), reason="SQLite's own locking is what is tested")
def test_sqlite_uses_wal_and_concurrent_writers_wait(app: Flask) -> None:
    assert db.session.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    db.session.commit()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        with app.app_context():
            try:
                for i in range(20):
                    db.session.add(Member(email=f"w{n}-{i}@example.org"))
                    db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Member)) == 80


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [
        (1250, "EUR", "en", "€12.50"),
        (500, "USD", "en", "$5.00"),
        (1000, "JPY", "en", "¥1,000"),
        (123456, "UAH", "uk", "1\u00a0234,56\u00a0₴"),
    ],
)
def test_money_is_formatted_with_the_currency_s_own_decimals(
    amount: int, currency: str, locale: str, shown: str
) -> None:
    assert format_money(amount, currency, locale) == shown


def test_amounts_typed_by_people_become_minor_units() -> None:
    assert parse_amount("12.5", "EUR") == 1250
    assert parse_amount(" 7,25 ", "EUR") == 725
    assert parse_amount("1000", "JPY") == 1000
    for bad, currency in [("abc", "EUR"), ("-3", "EUR"), ("1.234", "EUR"), ("10.5", "JPY")]:
        with pytest.raises(AmountError):
            parse_amount(bad, currency)


def test_a_conflict_free_insert_says_whether_it_wrote(app: Flask) -> None:
    from supporters.db import insert_ignoring_conflicts

    values = {
        "email": "once@example.org",
        "display_name": "",
        "role": "member",
        "session_version": 1,
    }
    assert insert_ignoring_conflicts(Member, values) is True
    assert insert_ignoring_conflicts(Member, {**values, "display_name": "again"}) is False
    db.session.commit()
    assert db.session.scalars(sa.select(Member.display_name)).all() == [""]


class _ClientAt(IsolatedClient):
    """A browser that reaches the app at another address than the tests' default."""

    base_url = "http://127.0.0.1:5123"

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("base_url", self.base_url)
        # Over HTTPS, the CSRF check also wants the form to come from a page of the same host.
        kwargs.setdefault("headers", {"Referer": self.base_url + "/"})
        return super().open(*args, **kwargs)


def test_in_development_links_lead_back_to_where_the_app_runs(
    make_app: Any, mail_server: MailServer
) -> None:
    # No base URL set, and the app runs on another port than the old default of 5000.
    app: Flask = make_app(BASE_URL="")
    app.test_client_class = _ClientAt
    with app.app_context():
        make_tier("reader")
        db.session.commit()
    client = app.test_client()
    submit(client, "/", action="/support", tier="reader", interval="month", email="new@example.org")
    message = mail_server.last_to("new@example.org")
    assert sign_in_link(message).startswith("http://127.0.0.1:5123/sign-in/confirm/")
    continue_url = submit(client, "/sign-in/code", code=sign_in_code(message)).headers["Location"]
    checkout = client.post(continue_url, data={"csrf_token": csrf_token(client, continue_url)})
    demo_page = checkout.headers["Location"]
    paid = client.post(
        demo_page, data={"csrf_token": csrf_token(client, demo_page), "action": "pay"}
    )
    assert paid.headers["Location"].startswith("http://127.0.0.1:5123/support/welcome?")


def test_in_production_links_use_the_base_url_whatever_host_a_request_names(
    make_app: Any, mail_server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    app: Flask = make_app(**PRODUCTION)
    app.test_client_class = _ClientAt
    _ClientAt.base_url = "https://forged.example"
    try:
        client = app.test_client()
        with caplog.at_level(logging.WARNING, logger="supporters.web"):
            submit(client, "/sign-in", email="reader@example.org")
            client.get("/sign-in")
    finally:
        _ClientAt.base_url = "http://127.0.0.1:5123"
    link = sign_in_link(mail_server.last_to("reader@example.org"))
    assert link.startswith("https://news.example/sign-in/confirm/")
    # Each worker says once that requests arrive for a host the links do not lead to.
    [warning] = [r.getMessage() for r in caplog.records if "forged.example" in r.getMessage()]
    assert "SUPPORTERS_BASE_URL is https://news.example" in warning


def test_doctor_says_what_production_would_refuse(make_app: Any) -> None:
    app: Flask = make_app(BASE_URL="", SMTP_HOST="", SECRET_KEY="short")
    result = app.test_cli_runner().invoke(args=["doctor"])
    assert result.exit_code == 1
    for complaint in ("SECRET_KEY must be set", "SMTP_HOST must be set", "BASE_URL must be set"):
        assert f"problem: SUPPORTERS_{complaint}" in result.output


def test_doctor_compares_the_base_url_with_the_host_readers_use(make_app: Any) -> None:
    app: Flask = make_app(**PRODUCTION, PROXY_COUNT=1)
    runner = app.test_cli_runner()
    right = runner.invoke(args=["doctor", "--no-probe", "--host", "news.example"])
    assert right.exit_code == 0, right.output
    assert "ok: SUPPORTERS_BASE_URL names the host readers use" in right.output
    assert "warning: Rate limits are kept in memory" in right.output
    wrong = runner.invoke(args=["doctor", "--no-probe", "--host", "www.news.example"])
    assert wrong.exit_code == 1
    assert "problem: Readers use www.news.example, but SUPPORTERS_BASE_URL is" in wrong.output


def test_doctor_asks_the_base_url_whether_the_app_answers_there(make_app: Any) -> None:
    app: Flask = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        app.config["BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
        answered = app.test_cli_runner().invoke(args=["doctor"]).output
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert f"ok: {app.config['BASE_URL']}/healthz answers" in answered
    # Nothing listens there any more: the port of a base URL that is wrong.
    dead = app.test_cli_runner().invoke(args=["doctor"]).output
    assert f"warning: {app.config['BASE_URL']}/healthz does not answer" in dead
