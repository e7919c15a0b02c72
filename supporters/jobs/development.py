"""Background jobs under ``flask run``: the development server runs a worker in a thread.

So the README's first command shows everything production does without a second command. Only
the process that serves ``flask run`` does: the app knows it is being built by Flask's own
``run`` command because that command's click context is the current one while it loads the app
(``click.get_current_context().command is flask.cli.run_command``). Nothing else builds the app
inside that context: gunicorn, tests, ``flask worker`` and every other command have no click
context or another command's. With the reloader on (``--debug``, or ``--reload``), ``flask run``
runs in two processes: a watcher that serves nothing and restarts the server when a file
changes, and the server, which Werkzeug marks with ``WERKZEUG_RUN_MAIN``; only the server runs
the worker, so jobs always run the code being edited.

Never in production (whatever serves the app there, workers run as processes of their own), and
not when ``SUPPORTERS_DEVELOPMENT_WORKER=false`` (to run ``flask worker`` beside it instead).
"""

from __future__ import annotations

import atexit
import logging
import threading

import click
from flask import Flask
from flask.cli import run_command
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader

from supporters.jobs.worker import Worker

log = logging.getLogger(__name__)


def is_development_server(app: Flask) -> bool:
    """True while ``flask run`` builds the app in the process that will serve it."""
    if app.config["IS_PRODUCTION"]:
        return False
    context = click.get_current_context(silent=True)
    if context is None or context.command is not run_command:
        return False
    # Flask's own rule: the reloader runs when asked, or by default with --debug.
    reloads = context.params.get("reload")
    if reloads is None:
        reloads = get_debug_flag()
    return not reloads or is_running_from_reloader()


def start_worker_thread(app: Flask) -> Worker:
    """Run a one-job-at-a-time worker in a daemon thread of this process until it exits."""
    worker = Worker(app)
    thread = threading.Thread(target=worker.run, name="supporters-development-worker", daemon=True)
    thread.start()
    # At exit the job in hand finishes (Python joins the pool's thread) and no other starts.
    atexit.register(worker.stop)
    log.info("background jobs run in this process (development server)")
    return worker
