"""Sign-up, sign-in by emailed link or code, sign-out, and the member's account page."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user
from werkzeug.wrappers import Response

from supporters import mail
from supporters.extensions import csrf, db, limiter
from supporters.members import auth, emails, limits, preferences, services
from supporters.members.forms import (
    ChangeEmailForm,
    CodeForm,
    EmptyForm,
    MailPreferencesForm,
    ProfileForm,
    SignInForm,
    SignUpForm,
)
from supporters.members.models import Member, SignInPurpose, SignInRequest
from supporters.members.redirects import safe_next

log = logging.getLogger(__name__)

bp = Blueprint("members", __name__)


def _pending_key() -> str:
    return f"request:{session.get(auth.PENDING_KEY, 'none')}"


def _limit(setting: str) -> str:
    return str(current_app.config[setting])


def _start_sign_in(
    form: SignInForm | SignUpForm, *, via_sign_up: bool, template: str
) -> ResponseReturnValue:
    """Issue and queue a sign-in message, or show the form again with what stopped it."""
    display_name = (form.display_name.data or "") if isinstance(form, SignUpForm) else ""
    try:
        issued = services.request_sign_in(
            form.email.normalized,
            display_name=display_name,
            next_url=form.next.data or "",
            ip_address=request.remote_addr or "",
        )
    except limits.TooManyMessages as exc:
        db.session.rollback()
        form.email.errors = [exc.message]
        return render_template(template, form=form), 429, {"Retry-After": str(exc.retry_after)}
    # A worker sends it within seconds; the next page says how that went.
    emails.queue_sign_in(issued, via_sign_up=via_sign_up)
    db.session.commit()
    auth.await_code(issued)
    return redirect(url_for("members.enter_code"))


@bp.route("/sign-in", methods=["GET", "POST"])
@limits.ip_limit
def sign_in() -> ResponseReturnValue:
    """Ask for a sign-in link and code by email."""
    if current_user.is_authenticated:
        return redirect(url_for("members.account"))
    form = SignInForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        return _start_sign_in(form, via_sign_up=False, template="members/sign_in.html")
    status = 400 if form.is_submitted() else 200
    return render_template("members/sign_in.html", form=form), status


@bp.route("/join", methods=["GET", "POST"])
@limits.ip_limit
def sign_up() -> ResponseReturnValue:
    """Create an account: the same emailed link and code, which also proves the address."""
    if current_user.is_authenticated:
        return redirect(url_for("members.account"))
    form = SignUpForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        return _start_sign_in(form, via_sign_up=True, template="members/sign_up.html")
    status = 400 if form.is_submitted() else 200
    return render_template("members/sign_up.html", form=form), status


def _finish(sign_in_request: SignInRequest) -> Response | tuple[str, int]:
    """Apply a redeemed request, sign this browser in, commit, and move on."""
    try:
        # Messages go out in the language the member reads the site in.
        member = services.complete_sign_in(sign_in_request, locale=str(get_locale()))
    except services.EmailTaken as exc:
        db.session.rollback()
        return render_template("members/sign_in_failed.html", message=exc.message), 409
    # Decided before the commit: nothing after it may fail and waste the code. Checked again
    # because the row may predate the form's filter.
    target = url_for("members.account")
    if sign_in_request.purpose is SignInPurpose.SIGN_IN:
        target = safe_next(sign_in_request.next_url) or target
    auth.sign_in(member, user_agent=request.user_agent.string)
    db.session.commit()
    if sign_in_request.purpose is SignInPurpose.CHANGE_EMAIL:
        flash(_("Your email address is now %(email)s.", email=member.email), "success")
    else:
        flash(_("You are signed in as %(email)s.", email=member.email), "success")
    return redirect(target)


@bp.route("/sign-in/code", methods=["GET", "POST"])
@limits.attempt_limit
@limiter.limit(
    lambda: _limit("SIGN_IN_ATTEMPT_LIMIT_PER_IP"), key_func=_pending_key, methods=["POST"]
)
def enter_code() -> Response | tuple[str, int] | str:
    """Type the 6-digit code in the browser that asked for it."""
    request_id = session.get(auth.PENDING_KEY)
    if request_id is None:
        flash(_("Enter your email address first: we will send you a code."), "info")
        return redirect(url_for("members.sign_in"))
    form = CodeForm()
    if not form.validate_on_submit():
        return _render_code_page(form, int(request_id)), 400 if form.is_submitted() else 200
    try:
        redeemed = services.redeem_code(int(request_id), form.code.data or "")
    except services.SignInError as exc:
        db.session.commit()  # keep the attempt count
        form.code.errors = [exc.message]
        if exc.exhausted:
            session.pop(auth.PENDING_KEY, None)
            return _render_code_page(form, int(request_id)), 410
        return _render_code_page(form, int(request_id)), 400
    return _finish(redeemed)


def _render_code_page(form: CodeForm, request_id: int) -> str:
    """The code form, saying where the message stands: a request cannot know whether the mail
    server took it, so the page asks the outbox each time it is shown."""
    return render_template(
        "members/enter_code.html",
        form=form,
        email=session.get(auth.PENDING_EMAIL_KEY, ""),
        delivery=emails.sign_in_delivery(request_id),
    )


@bp.route("/sign-in/confirm/<token>", methods=["GET", "POST"])
@limits.attempt_limit
def confirm_sign_in(token: str) -> Response | tuple[str, int] | str:
    """The emailed link: a page whose button signs in, so that link scanners use up nothing."""
    g.no_store = True
    form = EmptyForm()
    if request.method == "GET":
        try:
            pending = services.check_token(token)
        except services.SignInError as exc:
            return render_template("members/sign_in_failed.html", message=exc.message), 410
        return render_template("members/confirm.html", form=form, pending=pending)
    if not form.validate_on_submit():
        return render_template("members/sign_in_failed.html", message=_("The form expired.")), 400
    try:
        redeemed = services.redeem_token(token)
    except services.SignInError as exc:
        db.session.rollback()
        return render_template("members/sign_in_failed.html", message=exc.message), 410
    return _finish(redeemed)


@bp.post("/sign-out")
def sign_out() -> Response:
    """Sign this browser out; a copy of its cookie stops working too."""
    form = EmptyForm()
    if form.validate_on_submit():
        auth.sign_out()
        db.session.commit()
        flash(_("You are signed out."), "info")
    return redirect(url_for("billing.support"))


@bp.post("/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> Response:
    """Sign out of every browser and device at once."""
    form = EmptyForm()
    if form.validate_on_submit():
        services.end_all_sessions(auth.current_member())
        logout_user()
        session.clear()
        db.session.commit()
        flash(_("You are signed out on every device."), "info")
    return redirect(url_for("members.sign_in"))


def _mail_form(member: Member, form: MailPreferencesForm | None = None) -> MailPreferencesForm:
    """The member's choice of optional mail, with a box per topic they may choose."""
    choices = preferences.choices_of(member)
    if form is None:
        form = MailPreferencesForm(topics=[key for key, wanted in choices.items() if wanted])
    form.topics.choices = [(topic.key, topic.label) for topic in preferences.topics_for(member)]
    return form


def _render_account(
    profile_form: ProfileForm | None = None,
    email_form: ChangeEmailForm | None = None,
    mail_form: MailPreferencesForm | None = None,
) -> str:
    member = auth.current_member()
    return render_template(
        "members/account.html",
        member=member,
        profile_form=profile_form or ProfileForm(display_name=member.display_name),
        email_form=email_form or ChangeEmailForm(),
        mail_form=_mail_form(member, mail_form),
        topics=preferences.topics_for(member),
        is_bouncing=mail.is_bouncing(member.email),
        action_form=EmptyForm(),
    )


@bp.get("/account")
@login_required
def account() -> str:
    """The member's own page: name, email address, the mail they want, and sessions."""
    return _render_account()


@bp.post("/account/email-preferences")
@login_required
def update_mail_preferences() -> Response | tuple[str, int]:
    """Choose which optional mail to get (what a member must know is always sent)."""
    member = auth.current_member()
    form = _mail_form(member, MailPreferencesForm())
    if not form.validate_on_submit():
        return _render_account(mail_form=form), 400
    preferences.set_choices(member, form.topics.data or [])
    db.session.commit()
    flash(_("Your choice of emails is saved."), "success")
    return redirect(url_for("members.account") + "#email")


def _unsubscribing(token: str) -> tuple[Member, preferences.MailTopic]:
    try:
        return preferences.read_unsubscribe_token(token)
    except preferences.InvalidToken:
        abort(
            404, _("This unsubscribe link is not valid. Choose your emails on your account page.")
        )


# The one-click POST (RFC 8058) comes from the reader's mail program, with no session and no
# form token: the signed token in the address is what allows it.
@bp.route("/unsubscribe/<unsubscribe_token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(unsubscribe_token: str) -> str:
    """Stop one kind of optional mail from a link in it, without signing in; a GET only asks."""
    member, topic = _unsubscribing(unsubscribe_token)
    done = request.method == "POST"
    if done:
        preferences.unsubscribe(member.id, topic.key)
        db.session.commit()
    return render_template(
        "members/unsubscribe.html", member=member, topic=topic, token=unsubscribe_token, done=done
    )


@bp.post("/account/profile")
@login_required
def update_profile() -> Response | tuple[str, int]:
    """Change the name we greet the member by."""
    form = ProfileForm()
    if not form.validate_on_submit():
        return _render_account(profile_form=form), 400
    services.update_profile(auth.current_member(), display_name=form.display_name.data or "")
    db.session.commit()
    flash(_("Your name is saved."), "success")
    return redirect(url_for("members.account"))


@bp.post("/account/email")
@login_required
@limits.ip_limit
def change_email() -> ResponseReturnValue:
    """Start an email change: the new address gets a link and a code."""
    form = ChangeEmailForm()
    if not form.validate_on_submit():
        return _render_account(email_form=form), 400
    try:
        issued = services.request_email_change(
            auth.current_member(), form.email.normalized, ip_address=request.remote_addr or ""
        )
    except services.InvalidEmail as exc:
        form.email.errors = [str(exc)]
        return _render_account(email_form=form), 400
    except limits.TooManyMessages as exc:
        db.session.rollback()
        form.email.errors = [exc.message]
        return _render_account(email_form=form), 429, {"Retry-After": str(exc.retry_after)}
    emails.queue_sign_in(issued)
    db.session.commit()
    auth.await_code(issued)
    flash(
        _(
            "We sent a link and a code to %(email)s. Your address changes when you confirm it.",
            email=issued.request.email,
        ),
        "info",
    )
    return redirect(url_for("members.enter_code"))
