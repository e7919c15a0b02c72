"""A newsroom's page on another origin frames the goal embed, and its button opens the app."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from supporters.billing.models import FundingGoal, GoalMeasure
from supporters.extensions import db
from supporters.public.models import EmbedOrigin
from tests.voting.factories import make_patron


@pytest.fixture
def host_page(live_server: Any) -> Iterator[str]:
    """An article page on another port of 127.0.0.1 that frames the goal embed."""
    html = f"""<!doctype html><html lang="en"><head><title>An article</title></head><body>
<h1>An article</h1><p>For as little as the cost of one cup of coffee a month…</p>
<iframe src="{live_server.url}/embed/goals" title="Our funding goal" data-supporters-embed
 style="width:100%;border:0" height="60"></iframe>
<script src="{live_server.url}/embed/resize.js" async></script></body></html>""".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _visit(browser: Any, url: str) -> Any:
    """The page in a new browser context: nothing cached from an earlier visit."""
    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(url)
    return page


def test_an_allowed_site_frames_the_goal_and_its_button_opens_the_app(
    browser: Any, live_server: Any, host_page: str
) -> None:
    # Each answer is read afresh: a newly allowed site need not wait for the worker's copy.
    live_server.app.config["PUBLIC_CACHE_SECONDS"] = 0
    with live_server.app.app_context():
        db.session.add(FundingGoal(title="A reporter", measure=GoalMeasure.PATRONS, target=10))
        make_patron()
        db.session.commit()

    # Not allowed yet: the browser refuses to show the embed in the frame.
    page = _visit(browser, host_page)
    embed = page.frame_locator("iframe[data-supporters-embed]")
    expect(page.get_by_role("heading", name="An article")).to_be_visible()
    page.wait_for_timeout(300)
    expect(embed.get_by_text("1 of 10 patrons")).to_have_count(0)
    page.context.close()

    with live_server.app.app_context():
        db.session.add(EmbedOrigin(origin=host_page))
        db.session.commit()
    page = _visit(browser, host_page)
    embed = page.frame_locator("iframe[data-supporters-embed]")
    expect(embed.get_by_text("1 of 10 patrons")).to_be_visible()
    # The optional script sized the frame to its content (it started 60 pixels high).
    frame = page.locator("iframe[data-supporters-embed]")
    expect(frame).not_to_have_attribute("height", "60")
    assert frame.bounding_box()["height"] > 150

    with page.expect_popup() as opened:
        embed.get_by_role("link", name="Support us").click()
    support = opened.value
    support.wait_for_load_state()
    assert support.url == f"{live_server.url}/#join"
    expect(support.get_by_role("heading", name="Support independent journalism")).to_be_visible()
    assert support.evaluate("window.opener") is None  # rel=noopener
    page.context.close()
