"""Hand one message to the SMTP server, or in development without one, print it to the console.

A failure says whether trying again could help: :class:`TemporaryFailure` (the server could not
be reached, or answered 4xx: the outbox's job is retried with backoff) or
:class:`PermanentRefusal` (5xx for the recipient or the message: trying again would be refused
the same way). A refusal of our own sender or login is a problem of this installation, not of
the address, and is temporary: the messages wait until the setting is fixed.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import sys
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate

from flask import current_app

log = logging.getLogger(__name__)


class MailError(RuntimeError):
    """The message was not handed over."""


class TemporaryFailure(MailError):
    """The server could not be reached, or said to try later: a retry may succeed."""


class PermanentRefusal(MailError):
    """The server refused the recipient or the message for good (a 5xx reply)."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(f"{code} {reply}")
        self.code = code
        self.reply = reply


def build_message(
    *,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    headers: Mapping[str, str],
) -> EmailMessage:
    """A message with a plain-text part and, when there is one, an HTML alternative."""
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    for name, value in headers.items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def send(message: EmailMessage) -> None:
    """Deliver a message now (printed instead in development without SMTP).

    :raises TemporaryFailure: the server could not be reached or deferred it, or production has
        no SMTP server.
    :raises PermanentRefusal: the server refused the recipient or the message for good.
    """
    config = current_app.config
    if not config["SMTP_HOST"]:
        if config["IS_PRODUCTION"]:
            # Start-up refuses this; should it happen anyway, sign-in codes stay out of the logs.
            log.error("Mail not sent: no SMTP server is configured (SUPPORTERS_SMTP_HOST).")
            raise TemporaryFailure("no SMTP server configured")
        _print(message)
        return
    try:
        _deliver(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise _classify(exc) from exc


def _classify(exc: Exception) -> MailError:
    """Whether a failed delivery may succeed later, from the server's reply."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        if replies and all(code >= 500 for code, _ in replies):
            code, reply = replies[0]
            return PermanentRefusal(code, _decode(reply))
    elif isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500:
        return PermanentRefusal(exc.smtp_code, _decode(exc.smtp_error))
    return TemporaryFailure(f"{type(exc).__name__}: {exc}")


def _decode(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _deliver(message: EmailMessage) -> None:
    config = current_app.config
    host, port, timeout = config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_TIMEOUT"]
    security = config["SMTP_SECURITY"]
    smtp: smtplib.SMTP
    if security == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if config["SMTP_USERNAME"]:
            smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        smtp.send_message(message)


def _print(message: EmailMessage) -> None:
    """Development without SMTP: show the message where the person running the app looks."""
    rule = "-" * 72
    part = message.get_body(preferencelist=("plain",))
    body = part.get_content() if isinstance(part, EmailMessage) else ""
    print(
        f"\n{rule}\nEmail (no SMTP server configured; set SUPPORTERS_SMTP_HOST to send)\n"
        f"To: {message['To']}\nSubject: {message['Subject']}\n\n{body}{rule}\n",
        file=sys.stdout,
        flush=True,
    )
