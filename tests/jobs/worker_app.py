"""The app that ``flask worker`` and ``flask run`` subprocesses of the tests load: the real app
with the tests' job handlers (``--app tests.jobs.worker_app``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask

import supporters
from supporters import jobs


def create_app() -> Flask:
    app = supporters.create_app()
    jobs.register_handler(app, "test.slow", slow)
    jobs.register_handler(app, "test.touch", touch)
    return app


def slow(payload: dict[str, Any]) -> None:
    """Say it started, then wait until the test releases it."""
    Path(payload["started"]).touch()
    release = Path(payload["release"])
    deadline = time.monotonic() + 30
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the job")
        time.sleep(0.01)
    Path(payload["finished"]).touch()


def touch(payload: dict[str, Any]) -> None:
    Path(payload["path"]).touch()
