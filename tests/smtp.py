"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that keeps every message it gets."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
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

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        with self._keeper.lock:
            self._keeper.messages.clear()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._keeper.lock:
            return list(self._keeper.messages)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10) -> list[EmailMessage]:
        """Block until ``count`` messages for the address arrived (the browser tests need it)."""
        with self._keeper.arrived:
            self._keeper.arrived.wait_for(lambda: len(self.to_unlocked(address)) >= count, timeout)
        found = self.to(address)
        assert len(found) >= count, f"expected {count} message(s) to {address}, got {len(found)}"
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


def sign_in_code(message: EmailMessage) -> str:
    match = re.search(r"^\s+(\d{6})\s*$", body(message), re.MULTILINE)
    assert match, "no 6-digit code in the message"
    return match.group(1)


def sign_in_link(message: EmailMessage) -> str:
    match = re.search(r"(https?://\S+/sign-in/confirm/\S+)", body(message))
    assert match, "no sign-in link in the message"
    return match.group(1)
