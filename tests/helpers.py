"""Small helpers for driving forms through the test client as a browser would, and for
watching the SQL a request sends."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from supporters.extensions import db

# Settings a production start-up accepts, for ``make_app(**PRODUCTION)`` (every test app has
# the tests' SMTP server).
PRODUCTION: dict[str, Any] = {
    "ENV": "production",
    "BASE_URL": "https://news.example",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": ["whsec_x"],
}

_CSRF = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_token(client: FlaskClient, url: str) -> str:
    """The CSRF token of the first form on a page, as a browser would submit it."""
    page = client.get(url)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url} (status {page.status_code})"
    return match.group(1) or match.group(2)


def submit(
    client: FlaskClient, page_url: str, action: str | None = None, **data: Any
) -> TestResponse:
    """Open a page, then post its form with the page's CSRF token and the given fields."""
    token = csrf_token(client, page_url)
    return client.post(action or page_url, data={"csrf_token": token, **data})


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL sent to the database inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = db.engines[None]
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
