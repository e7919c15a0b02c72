"""The worker: claims due jobs, runs them in threads, keeps their leases, queues periodic runs.

One loop per worker process (the main thread, or the development server's thread) claims jobs
when a thread is free, hands them to a pool of ``concurrency`` threads, extends the leases of
the jobs in hand every third of a lease, and queues the run of each periodic job as its period
begins. Each job runs in an app context, a database session and a transaction of its own: the
handler's work and the job's "done" commit together, or, when the handler fails, roll back
together and the failure is stored in a second transaction.

:meth:`Worker.stop` (the ``flask worker`` command calls it on SIGTERM or SIGINT) stops the
claiming; the jobs in hand finish, keeping their leases, and then :meth:`Worker.run` returns.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from flask import Flask

from supporters.db import utcnow
from supporters.extensions import db
from supporters.jobs.queue import (
    LEASE_EXPIRED,
    Backoff,
    Claimed,
    claim_jobs,
    extend_leases,
    fail_job,
    finish_job,
    release_job,
)
from supporters.jobs.registry import registry
from supporters.jobs.schedule import queue_run

log = logging.getLogger(__name__)

#: The longest a worker waits before it tries the database again after an error (seconds).
_LONGEST_PAUSE = 30.0


class UnknownJobKind(Exception):
    """No handler is registered for a job's kind (in this worker's code)."""


class Worker:
    """Runs an app's due jobs, ``concurrency`` at a time, until stopped or (once) none is due."""

    def __init__(
        self,
        app: Flask,
        *,
        concurrency: int = 1,
        clock: Callable[[], dt.datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker runs at least one job at a time")
        config = app.config
        self.app = app
        self.concurrency = concurrency
        # host:pid says where to look; the suffix tells apart workers of one process.
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease = dt.timedelta(seconds=float(config["JOBS_LEASE_SECONDS"]))
        self.poll_seconds = float(config["JOBS_POLL_SECONDS"])
        self.backoff = Backoff.from_config(config)
        self._clock = clock
        self._jitter = jitter
        self._registry = registry(app)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_hand: dict[int, Claimed] = {}
        self._queued_periods: dict[str, dt.datetime] = {}

    def stop(self) -> None:
        """Claim nothing more: the jobs in hand finish, then :meth:`run` returns."""
        self._stopping.set()
        self._wake.set()

    @property
    def is_stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self, *, once: bool = False) -> None:
        """Run jobs until :meth:`stop`; with ``once``, until no job is due and none is running."""
        log.info("worker %s runs %d job(s) at a time", self.name, self.concurrency)
        renew_every = self.lease.total_seconds() / 3
        next_renewal = time.monotonic() + renew_every
        running: set[Future[None]] = set()
        pause = self.poll_seconds
        with (
            self.app.app_context(),
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool,
        ):
            while True:
                self._wake.clear()
                running = {future for future in running if not future.done()}
                if self.is_stopping and not running:
                    break
                claimed: list[Claimed] = []
                try:
                    if time.monotonic() >= next_renewal:
                        self._extend_leases()
                        next_renewal = time.monotonic() + renew_every
                    if not self.is_stopping:
                        self._queue_periodic_runs()
                        claimed = self._claim(self.concurrency - len(running))
                    pause = self.poll_seconds
                except Exception:
                    db.session.rollback()
                    if once:
                        raise  # a cron run says it failed; the jobs in hand finish first
                    # The database may be restarting: try again after a pause that grows.
                    log.exception("worker %s cannot reach the jobs table", self.name)
                    pause = min(max(pause * 2, 1), _LONGEST_PAUSE)
                for index, job in enumerate(claimed):
                    try:
                        future = pool.submit(self._run_in_context, job)
                    except RuntimeError:
                        # The interpreter is exiting (the development server's thread): hand
                        # back what will not run here, rather than hold it until its lease ends.
                        self._release(claimed[index:])
                        self.stop()
                        break
                    future.add_done_callback(lambda _: self._wake.set())
                    running.add(future)
                if once and not claimed and not running:
                    break
                # Woken early by a job that ends (a thread is free) or by stop().
                self._wake.wait(min(pause, max(next_renewal - time.monotonic(), 0)))
        log.info("worker %s stopped", self.name)

    def _claim(self, free: int) -> list[Claimed]:
        if free <= 0:
            return []
        claimed = claim_jobs(self.name, free, now=self._clock(), lease=self.lease)
        db.session.commit()
        with self._lock:
            self._in_hand.update((job.id, job) for job in claimed)
        return claimed

    def _release(self, jobs: list[Claimed]) -> None:
        for job in jobs:
            release_job(job, now=self._clock())
        db.session.commit()
        with self._lock:
            for job in jobs:
                self._in_hand.pop(job.id, None)

    def _extend_leases(self) -> None:
        with self._lock:
            in_hand = list(self._in_hand)
        extend_leases(in_hand, self.name, now=self._clock(), lease=self.lease)
        db.session.commit()

    def _queue_periodic_runs(self) -> None:
        """Queue each periodic job's current run, asking the database once per period."""
        now = self._clock()
        for periodic in self._registry.periodic.values():
            period_at = periodic.period_at(now)
            if self._queued_periods.get(periodic.name) == period_at:
                continue
            job = queue_run(periodic, now=now)
            db.session.commit()
            if job is not None:
                log.info("queued job %d, %s's run for %s", job.id, periodic.name, period_at)
            self._queued_periods[periodic.name] = period_at

    def _run_in_context(self, job: Claimed) -> None:
        try:
            with self.app.app_context():
                self._run(job)
        except Exception:
            # Its outcome could not be stored: another worker takes it after the lease.
            log.exception("job %d (%s): the outcome could not be stored", job.id, job.kind)
        finally:
            with self._lock:
                self._in_hand.pop(job.id, None)

    def _run(self, job: Claimed) -> None:
        """Run one held job in a transaction of its own and store the outcome."""
        if job.attempt > self.backoff.max_attempts:
            # Its workers kept stopping mid-job (killed, out of memory): running it again would
            # likely stop this one too.
            if fail_job(job, LEASE_EXPIRED, now=self._clock(), retry_at=None):
                self._tell_failure(job, LEASE_EXPIRED, is_dead=True)
            db.session.commit()
            log.error(
                "job %d (%s) is dead: its workers stopped %d times",
                job.id,
                job.kind,
                job.attempt - 1,
            )
            return
        started = time.monotonic()
        try:
            handler = self._registry.handlers.get(job.kind)
            if handler is None:
                raise UnknownJobKind(
                    f"no handler for jobs of kind {job.kind!r} in this worker; if a deploy is "
                    "rolling out, a worker running the new code will take it on a retry"
                )
            handler(job.payload)
            if not finish_job(job, now=self._clock()):
                db.session.rollback()
                log.warning(
                    "job %d (%s): another worker took it after this one's lease expired; "
                    "this run's work is rolled back",
                    job.id,
                    job.kind,
                )
                return
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            self._store_failure(job, exc)
            return
        log.info(
            "job %d (%s) done in %.3f s (attempt %d)",
            job.id,
            job.kind,
            time.monotonic() - started,
            job.attempt,
        )

    def _store_failure(self, job: Claimed, exc: Exception) -> None:
        now = self._clock()
        retry_at = self.backoff.retry_at(job.attempt, now, self._jitter)
        error = f"{type(exc).__name__}: {exc}"
        if not fail_job(job, error, now=now, retry_at=retry_at):
            db.session.rollback()
            return
        self._tell_failure(job, error, is_dead=retry_at is None)
        db.session.commit()
        if retry_at is None:
            log.error(
                "job %d (%s) is dead after %d attempts", job.id, job.kind, job.attempt, exc_info=exc
            )
        else:
            log.warning(
                "job %d (%s) failed (attempt %d); next try at %s",
                job.id,
                job.kind,
                job.attempt,
                retry_at.isoformat(timespec="seconds"),
                exc_info=exc,
            )

    def _tell_failure(self, job: Claimed, error: str, *, is_dead: bool) -> None:
        """Run the kind's failure hook in a savepoint: should it fail, the job's failure is
        stored all the same."""
        hook = self._registry.on_failure.get(job.kind)
        if hook is None:
            return
        try:
            with db.session.begin_nested():
                hook(job.payload, error, is_dead)
        except Exception:
            log.exception("job %d (%s): its failure hook failed", job.id, job.kind)
