"""Real ``flask`` processes on the test database: a worker stopped by SIGTERM finishes the job
in hand and exits 0, and ``flask run`` runs background jobs without a second command (in the
process that serves it only)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click
import pytest
from flask import Flask
from flask.cli import run_command

from supporters import jobs
from supporters.extensions import db
from supporters.jobs.cli import worker_cli
from supporters.jobs.development import is_development_server
from supporters.jobs.models import JobState
from tests.conftest import TEST_SECRET_KEY
from tests.helpers import PRODUCTION
from tests.jobs.conftest import POLL_SECONDS, stored_jobs

REPOSITORY = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.02)


@pytest.fixture
def flask_process(app: Flask, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``flask --app tests.jobs.worker_app <args>`` on this test's database."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("SUPPORTERS_", "FLASK_", "WERKZEUG_"))
        }
        env.update(
            PYTHONPATH=str(REPOSITORY),
            SUPPORTERS_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
            SUPPORTERS_SECRET_KEY=TEST_SECRET_KEY,
            SUPPORTERS_INSTANCE_PATH=str(tmp_path / "instance"),
            SUPPORTERS_JOBS_POLL_SECONDS=str(POLL_SECONDS),
            SUPPORTERS_JOBS_RETRY_BASE_SECONDS="0.1",
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "tests.jobs.worker_app", *args],
            cwd=REPOSITORY,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def read_until(stream: IO[str] | None, text: str) -> None:
    """Read a process's output line by line until a line says ``text``."""
    assert stream is not None
    for line in stream:
        if text in line:
            return
    pytest.fail(f"the process ended without saying {text!r}")


def queue_slow_jobs(tmp_path: Path, count: int) -> list[dict[str, str]]:
    payloads = [
        {
            "started": str(tmp_path / f"started-{n}"),
            "finished": str(tmp_path / f"finished-{n}"),
            "release": str(tmp_path / "release"),
        }
        for n in range(count)
    ]
    for payload in payloads:
        jobs.enqueue("test.slow", payload)
    db.session.commit()
    return payloads


def test_sigterm_lets_the_job_in_hand_finish_takes_no_other_and_exits_0(
    flask_process: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    first, second = queue_slow_jobs(tmp_path, 2)
    worker = flask_process("worker", "--concurrency", "1")
    wait_for(lambda: Path(first["started"]).exists(), "the worker starts the first job")

    worker.send_signal(signal.SIGTERM)
    read_until(worker.stderr, "SIGTERM: finishing the jobs in hand")
    Path(first["release"]).touch()

    assert worker.wait(20) == 0
    assert Path(first["finished"]).exists()
    assert not Path(second["started"]).exists()
    assert [(job.state, job.attempts) for job in stored_jobs()] == [
        (JobState.DONE, 1),
        (JobState.QUEUED, 0),
    ]


def test_flask_run_runs_background_jobs_without_a_second_command(
    flask_process: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    touched = tmp_path / "touched"
    jobs.enqueue("test.touch", {"path": str(touched)})
    db.session.commit()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    flask_process("run", "--port", str(port))

    wait_for(touched.exists, "the development server runs the queued job")
    wait_for(lambda: stored_jobs()[0].state is JobState.DONE, "the job is marked done")


def test_only_the_process_serving_flask_run_runs_jobs_itself(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    development, production = make_app(), make_app(**PRODUCTION)
    cases: list[tuple[click.Command | None, dict[str, Any], dict[str, str], bool]] = [
        # command, its options, the environment, runs jobs
        (None, {}, {}, False),  # gunicorn, the tests, a shell: no command builds the app
        (worker_cli, {}, {}, False),
        (run_command, {"reload": None}, {}, True),  # without --debug: no reloader
        (run_command, {"reload": False}, {"FLASK_DEBUG": "1"}, True),
        # With the reloader: its watcher process serves nothing, the server it starts does.
        (run_command, {"reload": None}, {"FLASK_DEBUG": "1"}, False),
        (run_command, {"reload": True}, {}, False),
        (run_command, {"reload": True}, {"WERKZEUG_RUN_MAIN": "true"}, True),
    ]
    for command, params, environ, runs_jobs in cases:
        with monkeypatch.context() as patch:
            for name in ("FLASK_DEBUG", "WERKZEUG_RUN_MAIN"):
                patch.delenv(name, raising=False)
            for name, value in environ.items():
                patch.setenv(name, value)
            with contextlib.ExitStack() as stack:
                if command is not None:
                    stack.enter_context(click.Context(command, info_name=command.name))
                    click.get_current_context().params.update(params)
                case = (command and command.name, params, environ)
                assert is_development_server(development) is runs_jobs, case
                assert is_development_server(production) is False, case
