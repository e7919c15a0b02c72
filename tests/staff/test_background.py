"""The background-work page: failed and dead jobs and webhook events that failed, each with a
retry button (admins, audited); the overview's lag."""

from __future__ import annotations

import socket
from typing import Any

import sqlalchemy as sa

from supporters.audit import AuditEntry
from supporters.extensions import db
from supporters.jobs.models import Job, JobState
from supporters.members.models import Role
from tests.billing.fake_stripe import event_payload, sign_payload
from tests.conftest import run_jobs
from tests.factories import make_member, signed_in_client
from tests.helpers import csrf_token, text

SECRET = "whsec_background"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_webhook_job_is_shown_with_its_error_and_an_admin_retries_it(
    make_app: Any,
) -> None:
    # Stripe cannot be reached, and a job gets one attempt: it dies at once.
    app = make_app(
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_WEBHOOK_SECRET=[SECRET],
        STRIPE_API_BASE=f"http://127.0.0.1:{_closed_port()}",
        JOBS_MAX_ATTEMPTS=1,
    )
    with app.app_context():
        admin = make_member("admin@example.org", role=Role.ADMIN)
        editor = make_member("editor@example.org", role=Role.STAFF)
        db.session.commit()
        body = event_payload(
            {
                "id": "evt_storm_1",
                "object": "event",
                "type": "invoice.paid",
                "api_version": "2026-10-28.endive",
                "livemode": False,
                "data": {"object": {"id": "in_1", "object": "invoice"}},
            }
        )
        answer = app.test_client().post(
            "/stripe/webhook", data=body, headers={"Stripe-Signature": sign_payload(body, SECRET)}
        )
        assert (answer.status_code, answer.json["outcome"]) == (200, "queued")

        # Staff see on the overview that a job waits for a worker.
        overview = text(signed_in_client(app, editor).get("/staff/"))
        assert 'id="stat-lag">–<' not in overview and "oldest job waiting" in overview

        run_jobs(app)
        admin_client = signed_in_client(app, admin)
        page = text(admin_client.get("/staff/background"))
        assert "evt_storm_1" in page and "invoice.paid" in page
        assert "APIConnectionError" in page
        assert page.count("Given up after the last attempt") == 2  # the event, and its job
        assert "Background work" in text(admin_client.get("/staff/"))

        job_id = db.session.scalars(
            sa.select(Job.id).where(Job.kind == "billing.stripe_event")
        ).one()
        token = csrf_token(admin_client, "/staff/background")
        assert admin_client.post(f"/staff/background/jobs/{job_id}/retry").status_code == 400
        retried = admin_client.post(
            f"/staff/background/jobs/{job_id}/retry", data={"csrf_token": token}
        )
        assert retried.status_code == 302
        db.session.expire_all()
        job = db.session.get_one(Job, job_id)
        assert (job.state, job.attempts) == (JobState.QUEUED, 0)
        entry = db.session.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.action == "job.retry")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry and (entry.actor_id, entry.target_id) == (admin.id, str(job_id))
        # A second click finds nothing to retry: said, nothing changes.
        again = admin_client.post(
            f"/staff/background/jobs/{job_id}/retry", data={"csrf_token": token}
        )
        assert again.status_code == 302
        assert "not waiting for a retry" in text(admin_client.get("/staff/background"))
