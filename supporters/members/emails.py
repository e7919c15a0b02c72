"""Messages about a member's account, rendered from templates/members/email/."""

from __future__ import annotations

from flask import current_app, render_template
from flask_babel import gettext as _

from supporters import mail, web
from supporters.members.models import SignInPurpose
from supporters.members.services import IssuedSignIn


def sign_in_link(token: str) -> str:
    """The absolute URL of a sign-in token's confirmation page, on the site's public address."""
    return web.external_url("members.confirm_sign_in", token=token)


def send_sign_in(issued: IssuedSignIn, *, via_sign_up: bool = False) -> None:
    """Send the link and code of a sign-in, sign-up or email-change request.

    ``via_sign_up`` with an address that already has an account tells its owner so, privately:
    the form answered exactly as for a new address.

    :raises supporters.mail.MailError: the message could not be handed to the mail server.
    """
    request = issued.request
    site = current_app.config["SITE_NAME"]
    if request.purpose is SignInPurpose.CHANGE_EMAIL:
        subject = _("Confirm your new email address for %(site)s", site=site)
    elif issued.is_new_member:
        subject = _("Confirm your email to join %(site)s", site=site)
    else:
        subject = _("Your sign-in code for %(site)s", site=site)
    text = render_template(
        "members/email/sign_in.txt",
        issued=issued,
        purpose=request.purpose.value,
        link=sign_in_link(issued.token),
        minutes=current_app.config["SIGN_IN_TTL_SECONDS"] // 60,
        site=site,
        duplicate_sign_up=via_sign_up and not issued.is_new_member,
    )
    mail.send(request.email, subject, text)
