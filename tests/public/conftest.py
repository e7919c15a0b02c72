"""The public tests read the figures afresh on every request, unless a test keeps them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    application = make_app(PUBLIC_CACHE_SECONDS=0)
    with application.app_context():
        yield application
