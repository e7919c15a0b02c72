"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that keeps every message it gets.

The app queues its messages in its outbox and a worker delivers them. Reading the mailbox
(``messages``, ``to``, ``last_to``) first runs the delivery of every app the test built, as
the worker running beside the app would have by the time a reader opens their mail; the
browser tests' server runs a worker thread of its own, and ``wait_for`` waits for it.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        # Recipient -> the reply refusing it ("550 5.1.1 ..." for good, "451 ..." for now).
        self.refusals: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            refusal = self.refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class MailServer:
    """Start and stop the server; read messages by recipient."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._keeper = _Keeper()
        self._controller = Controller(self._keeper, hostname="127.0.0.1", port=self.port)
        #: Run before the mailbox is read: each delivers what an app's outbox holds.
        self.deliveries: list[Callable[[], None]] = []

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        """Forget the messages, the refusals and the apps of the previous test."""
        with self._keeper.lock:
            self._keeper.messages.clear()
            self._keeper.refusals.clear()
        self.deliveries.clear()

    def refuse(self, address: str, reply: str = "550 5.1.1 No such mailbox here") -> None:
        """Answer RCPT TO for ``address`` with ``reply`` (a 4xx one defers it for now)."""
        with self._keeper.lock:
            self._keeper.refusals[address.lower()] = reply

    def accept(self, address: str) -> None:
        with self._keeper.lock:
            self._keeper.refusals.pop(address.lower(), None)

    def deliver(self) -> None:
        """Let each app built by the test deliver its queued messages, as its worker would."""
        for delivery in self.deliveries:
            delivery()

    @property
    def received(self) -> list[EmailMessage]:
        """What the server holds now, delivering nothing first."""
        with self._keeper.lock:
            return list(self._keeper.messages)

    @property
    def messages(self) -> list[EmailMessage]:
        self.deliver()
        return self.received

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10) -> list[EmailMessage]:
        """Block until ``count`` messages for the address arrived (the browser tests need it)."""
        with self._keeper.arrived:
            self._keeper.arrived.wait_for(lambda: len(self.to_unlocked(address)) >= count, timeout)
        found = self.to(address)
        assert len(found) >= count, f"expected {count} message(s) to {address}, got {len(found)}"
        return found

    def wait_for_code(self, address: str, after: int = 0, timeout: float = 10) -> str:
        """Block until a message to the address, past the first ``after``, holds a sign-in code;
        other mail that the workers send meanwhile (receipts, notices) is passed over."""

        def code() -> str | None:
            for message in self.to_unlocked(address)[after:]:
                if match := _CODE.search(body(message)):
                    return match.group(1)
            return None

        with self._keeper.arrived:
            found = self._keeper.arrived.wait_for(code, timeout)
        assert found, f"no sign-in code reached {address}"
        return found

    def to_unlocked(self, address: str) -> list[EmailMessage]:
        return [m for m in self._keeper.messages if address.lower() in str(m["To"]).lower()]

    def last_to(self, address: str) -> EmailMessage:
        found = self.to(address)
        assert found, f"no message to {address}"
        return found[-1]


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


_CODE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


def sign_in_code(message: EmailMessage) -> str:
    match = _CODE.search(body(message))
    assert match, "no 6-digit code in the message"
    return match.group(1)


def sign_in_link(message: EmailMessage) -> str:
    match = re.search(r"(https?://\S+/sign-in/confirm/\S+)", body(message))
    assert match, "no sign-in link in the message"
    return match.group(1)
