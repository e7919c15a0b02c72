"""Staff pages about email: the latest messages and where each stands, and the addresses that
refuse mail (admins may forget one, so that optional mail goes there again)."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from supporters import mail, params, site_settings
from supporters.extensions import db
from supporters.members.auth import admin_required, current_actor, staff_required
from supporters.staff.forms import EmailScheduleForm, ForgetBounceForm
from supporters.staff.views.blueprint import bp

PAGE = 100

#: What each kind of message is, as staff read it (a kind not listed shows as stored).
KINDS = {
    "members.sign_in": _l("Sign-in link and code"),
    "billing.welcome": _l("Welcome"),
    "billing.receipt": _l("Receipt"),
    "billing.gift_receipt": _l("Receipt of a gift"),
    "billing.payment_failed": _l("Payment failed"),
    "billing.payment_recovered": _l("Payment went through"),
    "billing.cancellation_scheduled": _l("Cancellation scheduled"),
    "billing.support_ended": _l("Support ended"),
    "billing.amount_changed": _l("New amount"),
    "billing.renewal_notice": _l("Renewal notice"),
    "voting.poll_opened": _l("Poll opened"),
    "voting.poll_results": _l("Poll results"),
    "voting.proposal_decided": _l("Proposal decided"),
    "voting.topic_published": _l("Story published"),
    "staff.digest": _l("Staff digest"),
    "patreon.invitation": _l("Invitation to move from Patreon"),
    "patreon.reminder": _l("Reminder to move from Patreon"),
}


@bp.get("/emails")
@staff_required
def list_emails() -> str:
    """The latest messages, newest first, with where each stands; the addresses that bounce."""
    before = params.int_arg("before", 0, minimum=1)
    messages = mail.recent_messages(limit=PAGE, before_id=before or None)
    return render_template(
        "staff/list_emails.html",
        messages=messages,
        kinds=KINDS,
        bouncing=mail.bouncing_addresses(),
        next_before=messages[-1].message.id if len(messages) == PAGE else None,
        forget_form=ForgetBounceForm(),
    )


@bp.post("/emails/bouncing")
@admin_required
def forget_bounce() -> Response:
    """Let optional mail go to an address again (its owner says it works now); audited."""
    form = ForgetBounceForm()
    if not form.validate_on_submit():
        abort(400)
    email = form.email.data or ""
    if mail.forget_bounce(email, current_actor()):
        db.session.commit()
        flash(_("Optional mail goes to %(email)s again.", email=email), "success")
    else:
        flash(_("%(email)s was not on the list.", email=email), "info")
    return redirect(url_for("staff.list_emails") + "#bouncing")


@bp.route("/emails/schedule", methods=["GET", "POST"])
@admin_required
def email_schedule() -> str | Response | tuple[str, int]:
    """When failed payments are reminded and yearly renewals announced; saving is audited."""
    keep_days = float(current_app.config["MAIL_KEEP_DAYS"])
    form = EmailScheduleForm(keep_days=keep_days)
    if request.method == "GET":
        form.dunning_days.show(site_settings.value("DUNNING_DAYS"))
        form.renewal_notice_days.data = site_settings.value("RENEWAL_NOTICE_DAYS")
    elif form.validate_on_submit():
        changed = site_settings.store(
            {
                "DUNNING_DAYS": form.dunning_days.days,
                "RENEWAL_NOTICE_DAYS": form.renewal_notice_days.data,
            },
            current_actor(),
        )
        db.session.commit()
        if changed:
            flash(_("The email schedule is saved."), "success")
        else:
            flash(_("Nothing changed."), "info")
        return redirect(url_for("staff.email_schedule"))
    status = 400 if request.method == "POST" else 200
    return render_template("staff/email_schedule.html", form=form, keep_days=keep_days), status
