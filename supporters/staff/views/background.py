"""The background-work page (admins): failed and dead jobs, webhook events that failed, and a
retry button for each; the queue's depth and lag."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from supporters import jobs
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor
from supporters.staff.forms import RetryJobForm
from supporters.staff.queries import background
from supporters.staff.views.blueprint import bp

PAGE = 100


@bp.get("/background")
@admin_required
def list_background() -> str:
    """Failed and dead jobs with their errors, failed webhook events, and the queue's lag."""
    now = utcnow()
    figures = jobs.stats(now)
    return render_template(
        "staff/list_background.html",
        now=now,
        figures=figures,
        lag_text=format_timedelta(figures.lag(now), threshold=1),
        failed_jobs=background.failed_jobs(PAGE),
        failed_events=background.failed_events(PAGE),
        retry_form=RetryJobForm(),
    )


@bp.post("/background/jobs/<int:job_id>/retry")
@admin_required
def retry_job(job_id: int) -> Response:
    """Queue a failed or dead job to run now, with a fresh count of attempts; audited."""
    if not RetryJobForm().validate_on_submit():
        abort(400)
    try:
        job = jobs.retry(job_id, current_actor())
    except jobs.NotRetryable:
        flash(_("That job is not waiting for a retry any more."), "info")
    else:
        db.session.commit()
        flash(_("Job %(id)d is queued: a worker runs it shortly.", id=job.id), "success")
    return redirect(url_for("staff.list_background"))
