"""Send one email: over SMTP, or in development without a server, print it to the console."""

from __future__ import annotations

import logging
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from flask import current_app

log = logging.getLogger(__name__)


class MailError(RuntimeError):
    """The SMTP server could not be reached or refused the message."""


def build_message(to: str, subject: str, text: str) -> EmailMessage:
    sender = current_app.config["MAIL_FROM"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    return message


def send(to: str, subject: str, text: str) -> EmailMessage:
    """Deliver a plain-text message now (printed instead in development without SMTP).

    :raises MailError: the message could not be handed over, or production has no SMTP server.
    """
    message = build_message(to, subject, text)
    config = current_app.config
    if not config["SMTP_HOST"]:
        if config["IS_PRODUCTION"]:
            # Start-up refuses this; should it happen anyway, sign-in codes stay out of the logs.
            log.error("Mail not sent: no SMTP server is configured (SUPPORTERS_SMTP_HOST).")
            raise MailError("no SMTP server configured")
        _print(message)
        return message
    try:
        _deliver(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("Mail to %s not sent: %s", to, exc)
        raise MailError(str(exc)) from exc
    log.info("Mail sent to %s: %s", to, subject)
    return message


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
    """Development without SMTP: show the whole message where the person running the app looks."""
    rule = "-" * 72
    body = message.get_content()
    print(
        f"\n{rule}\nEmail (no SMTP server configured; set SUPPORTERS_SMTP_HOST to send)\n"
        f"To: {message['To']}\nSubject: {message['Subject']}\n\n{body}{rule}\n",
        file=sys.stdout,
        flush=True,
    )
