"""Staff pages of the move from Patreon: the progress page, its CSV, and the import (upload,
preview with the tier mapping to confirm, confirm)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from supporters import audit, downloads, jobs, site_settings, web
from supporters.db import utcnow
from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor, staff_required
from supporters.patreon import invitations, services
from supporters.patreon import progress as progress_queries
from supporters.patreon.cli import read_file
from supporters.patreon.export import Export, ExportError
from supporters.patreon.forms import ConfirmForm, InviteForm, ReminderDaysForm, UploadForm

bp = Blueprint("patreon", __name__, url_prefix="/staff/patreon")

#: The largest export the upload accepts: Patreon's CSV of 100,000 patrons is about 20 MB.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Uploads not confirmed within this many seconds are deleted at the next upload.
UPLOAD_KEEP_SECONDS = 24 * 3600


def init_app(app: Flask) -> None:
    """Register the pages, and let the upload read a body larger than the app's usual limit."""
    app.register_blueprint(bp)
    web.allow_large_body(app, "patreon.upload", MAX_UPLOAD_BYTES)


def _uploads() -> Path:
    folder = Path(current_app.instance_path) / "patreon-uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _forget_old_uploads(folder: Path) -> None:
    cutoff = time.time() - UPLOAD_KEEP_SECONDS
    for path in folder.glob("*.csv"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


@bp.get("/")
@staff_required
def show_progress() -> str:
    """How the move from Patreon is going: imported, invited, opened, moved over, lapsed."""
    reminder_form = ReminderDaysForm()
    reminder_form.reminder_days.show(invitations.reminder_days())
    return _render_progress(InviteForm(), reminder_form)


def _render_progress(invite_form: InviteForm, reminder_form: ReminderDaysForm) -> str:
    return render_template(
        "patreon/progress.html",
        progress=progress_queries.progress(),
        invitable=invitations.invitable_count(),
        invite_form=invite_form,
        reminder_form=reminder_form,
    )


@bp.post("/invite")
@admin_required
def invite() -> Response | tuple[str, int]:
    """Invite every imported patron not invited yet (a job writes the messages in batches), or
    the one patron named; audited."""
    form = InviteForm()
    if not form.validate_on_submit():
        return _render_progress(form, ReminderDaysForm(formdata=None)), 400
    actor = current_actor()
    email = (form.email.data or "").strip()
    if email:
        try:
            offer = invitations.invite_one(email)
        except invitations.InvitationError as exc:
            db.session.rollback()
            form.email.errors = [exc.message]
            return _render_progress(form, ReminderDaysForm(formdata=None)), 409
        audit.record_action(
            "patreon.invited",
            actor_id=actor.member_id,
            target_type="member",
            target_id=offer.member_id,
            details={"offer": offer.id},
            ip_address=actor.ip_address,
        )
        db.session.commit()
        flash(_("The invitation to %(email)s is on its way.", email=email.lower()), "success")
        return redirect(url_for("patreon.show_progress"))
    count = invitations.invitable_count()
    jobs.enqueue(invitations.INVITE, {})
    audit.record_action(
        "patreon.invitations_requested",
        actor_id=actor.member_id,
        target_type="patreon",
        details={"patrons": count},
        ip_address=actor.ip_address,
    )
    db.session.commit()
    flash(
        _(
            "Invitations are being sent to the %(count)d patrons not invited yet, in the "
            "background: refresh this page to follow them.",
            count=count,
        ),
        "success",
    )
    return redirect(url_for("patreon.show_progress"))


@bp.post("/reminders")
@admin_required
def save_reminder_days() -> Response | tuple[str, int]:
    """Save the days after the invitation on which reminders go out; audited."""
    form = ReminderDaysForm()
    if not form.validate_on_submit():
        return _render_progress(InviteForm(formdata=None), form), 400
    changed = site_settings.store(
        {"PATREON_REMINDER_DAYS": form.reminder_days.days}, current_actor()
    )
    db.session.commit()
    flash(_("The reminder days are saved.") if changed else _("Nothing changed."), "success")
    return redirect(url_for("patreon.show_progress") + "#reminders")


@bp.get("/not-moved.csv")
@staff_required
def export_not_moved() -> Response:
    """Imported patrons who have not moved over yet, as CSV."""
    stamp = utcnow().strftime("%Y-%m-%d")
    return downloads.stream_csv(
        f"patreon-not-moved-{stamp}.csv",
        progress_queries.NOT_MOVED_HEADER,
        progress_queries.not_moved_rows(),
    )


@bp.get("/import")
@admin_required
def new_import() -> str:
    """The form to upload Patreon's members export."""
    return render_template("patreon/upload.html", form=UploadForm(), errors=[])


def _preview(export: Export, key: str, mapping: dict[str, int | None]) -> tuple[str, int]:
    """What the import would change, counted by running it and rolling it back."""
    try:
        counts = services.import_export(export, mapping, current_actor())
        problem = ""
    except services.PatreonImportError as exc:
        counts, problem = None, exc.message
    db.session.rollback()
    return render_template(
        "patreon/preview.html",
        form=ConfirmForm(formdata=None, upload=key),
        counts=counts,
        problem=problem,
        patreon_tiers=services.tier_names(export),
        mapping=mapping,
        tiers=services.local_tiers(),
    ), (200 if counts is not None else 400)


@bp.post("/import")
@admin_required
def upload() -> tuple[str, int]:
    """Keep the uploaded export server-side, check it whole, and show what it would change."""
    form = UploadForm()
    if not form.validate_on_submit():
        return render_template("patreon/upload.html", form=form, errors=[]), 400
    folder = _uploads()
    _forget_old_uploads(folder)
    key = secrets.token_urlsafe(32)
    path = folder / f"{key}.csv"
    try:
        form.file.data.save(path)  # streamed to disk: never held in memory or the session
    finally:
        form.file.data.close()  # werkzeug's temporary file of the upload, at once
    try:
        export = read_file(path)
    except ExportError as exc:
        path.unlink(missing_ok=True)
        return render_template("patreon/upload.html", form=form, errors=exc.errors), 400
    return _preview(export, key, services.proposed_mapping(export))


@bp.post("/import/confirm")
@admin_required
def confirm_import() -> Response | tuple[str, int]:
    """Apply an uploaded export with the tier mapping the admin confirmed (audited)."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    path = _uploads() / f"{form.upload.data}.csv"
    if not path.is_file():
        flash(_("That upload is no longer here: upload the file again."), "error")
        return redirect(url_for("patreon.new_import"))
    try:
        export = read_file(path)
    except ExportError:
        abort(400)
    slugs = {t.slug: t.id for t in services.local_tiers()}
    mapping: dict[str, int | None] = {}
    for index, (name, _people) in enumerate(services.tier_names(export)):
        chosen = request.form.get(f"map-{index}", "")
        if chosen and chosen not in slugs:
            abort(400)
        mapping[name] = slugs.get(chosen)
    try:
        counts = services.import_export(export, mapping, current_actor())
    except services.PatreonImportError:
        db.session.rollback()
        return _preview(export, form.upload.data or "", mapping)
    db.session.commit()
    path.unlink(missing_ok=True)
    flash(
        _(
            "Imported: %(created)d members created, %(patrons)d Patreon records added and "
            "%(updated)d updated, %(grants)d patrons entitled via Patreon.",
            created=counts.members_created,
            patrons=counts.patrons_created,
            updated=counts.patrons_updated,
            grants=counts.grants_created,
        ),
        "success",
    )
    return redirect(url_for("patreon.show_progress"))
