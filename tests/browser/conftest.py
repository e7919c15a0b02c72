"""Browser tests: Debian's Chromium, driven by Playwright, against the app on 127.0.0.1.

Without /usr/bin/chromium the tests are skipped locally (install it with `apt-get install
chromium`); under CI=true a missing browser is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from supporters.jobs.worker import Worker
from tests.billing.conftest import WEBHOOK_SECRET
from tests.billing.fake_stripe import FakeStripe
from tests.smtp import MailServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in str(item.path.parent.name):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs it with apt")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class LiveServer:
    """The app served by Werkzeug's threaded server on a free port of 127.0.0.1, with a worker
    beside it (as in production) that sends its email."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._worker = Worker(app)
        self._worker_thread = threading.Thread(target=self._worker.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._worker_thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._worker.stop()
        self._worker_thread.join(timeout=5)


#: The worker beside the browser tests' server looks for messages to send this often (seconds).
POLL_SECONDS = 0.05


@pytest.fixture
def live_server(make_app: Any) -> Iterator[LiveServer]:
    app = make_app(JOBS_POLL_SECONDS=POLL_SECONDS)
    server = LiveServer(app)
    app.config["BASE_URL"] = server.url
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stripe_server(make_app: Any) -> Iterator[tuple[LiveServer, FakeStripe]]:
    """The app served on 127.0.0.1, with Stripe keys, talking to a fake Stripe of its own."""
    with FakeStripe(seed=11) as fake:
        app = make_app(
            STRIPE_SECRET_KEY="sk_test_supporters",
            STRIPE_PUBLISHABLE_KEY="pk_test_supporters",
            STRIPE_WEBHOOK_SECRET=[WEBHOOK_SECRET],
            STRIPE_API_BASE=fake.api_base,
            JOBS_POLL_SECONDS=POLL_SECONDS,
        )
        server = LiveServer(app)
        app.config["BASE_URL"] = server.url
        server.start()
        yield server, fake
        server.stop()
        assert fake.errors == [], "the fake Stripe failed unexpectedly"


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in_with_code(page: Any, mail_server: MailServer, email: str) -> None:
    """Sign in from the sign-in page with the code the app emails."""
    page.goto("/sign-in")
    page.get_by_label("Email address").fill(email)
    sent_before = len(mail_server.to(email))
    page.get_by_role("button", name="Email me a sign-in code").click()
    page.get_by_label("Code from the email").fill(mail_server.wait_for_code(email, sent_before))
    page.get_by_role("button", name="Sign in").click()
