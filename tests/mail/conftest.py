"""Fixtures of the outbox's tests: an app with a message of the tests' own, and a clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from jinja2 import ChoiceLoader, DictLoader

from tests.jobs.conftest import FakeClock

# A message of the tests' own, in the layout every message of the app uses.
NOTE_TEMPLATES = {
    "emails/test/note.txt": (
        '{% extends "emails/_layout.txt" %}{% block content %}'
        "Hello {{ name }},\n\n{{ _('Your note:') }} {{ note }}\n{% endblock %}"
    ),
    "emails/test/note.html": (
        '{% extends "emails/_layout.html" %}{% block content %}'
        "<p>Hello {{ name }},</p><p>{{ note }}</p>{% endblock %}"
    ),
}


@pytest.fixture
def app(make_app: Any) -> Iterator[Flask]:
    application = make_app()
    with_note_templates(application)
    with application.app_context():
        yield application


def with_note_templates(app: Flask) -> Flask:
    """Let the app render the tests' own message beside its own."""
    app.jinja_env.loader = ChoiceLoader([DictLoader(NOTE_TEMPLATES), app.jinja_env.loader])  # type: ignore[list-item]
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
