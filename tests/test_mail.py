"""The mail module: SMTP when configured, the console otherwise, and a clear error when SMTP fails."""

from __future__ import annotations

from typing import Any

import pytest

from supporters import mail
from tests.helpers import PRODUCTION
from tests.smtp import MailServer, body


def test_messages_go_over_smtp_with_proper_headers(make_app: Any, mail_server: MailServer) -> None:
    app = make_app(MAIL_FROM="The Gazette <members@gazette.example>")
    with app.app_context():
        mail.send("reader@example.org", "Hello", "Ünïcode body\n")
    [message] = mail_server.to("reader@example.org")
    assert message["From"] == "The Gazette <members@gazette.example>"
    assert message["Subject"] == "Hello" and message["Message-ID"].endswith("@gazette.example>")
    assert body(message).strip() == "Ünïcode body"


def test_without_smtp_the_message_is_printed(
    make_app: Any, capsys: pytest.CaptureFixture[str], mail_server: MailServer
) -> None:
    app = make_app(SMTP_HOST="")
    with app.app_context():
        mail.send("reader@example.org", "Your code", "Code: 123456\n")
    printed = capsys.readouterr().out
    assert "To: reader@example.org" in printed and "Code: 123456" in printed
    assert mail_server.messages == []


def test_production_never_prints_a_message(
    make_app: Any, capsys: pytest.CaptureFixture[str], mail_server: MailServer
) -> None:
    app = make_app(**PRODUCTION)
    # Start-up refuses production without SMTP; should the setting go missing all the same,
    # a sign-in code must not end up in the console log.
    app.config["SMTP_HOST"] = ""
    with app.app_context(), pytest.raises(mail.MailError):
        mail.send("reader@example.org", "Your code", "Code: 123456\n")
    captured = capsys.readouterr()
    assert "123456" not in captured.out + captured.err
    assert mail_server.messages == []


def test_an_unreachable_smtp_server_is_a_mail_error(make_app: Any) -> None:
    app = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=9, SMTP_TIMEOUT=2)
    with app.app_context(), pytest.raises(mail.MailError):
        mail.send("reader@example.org", "Hello", "Body\n")
