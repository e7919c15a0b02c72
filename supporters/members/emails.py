"""Messages about a member's account, rendered from templates/emails/members/: the sign-in link
and code. They go through the outbox: queued in the request's transaction, sent by a worker
within seconds."""

from __future__ import annotations

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from supporters import mail, web
from supporters.members.models import SignInPurpose
from supporters.members.services import IssuedSignIn

SIGN_IN = "members.sign_in"


def sign_in_link(token: str) -> str:
    """The absolute URL of a sign-in token's confirmation page, on the site's public address."""
    return web.external_url("members.confirm_sign_in", token=token)


def _sign_in_key(request_id: int) -> str:
    return f"{SIGN_IN}:{request_id}"


def queue_sign_in(issued: IssuedSignIn, *, via_sign_up: bool = False) -> None:
    """Queue the link and code of a sign-in, sign-up or email-change request, in the language
    of the page it was asked from; the caller commits.

    ``via_sign_up`` with an address that already has an account tells its owner so, privately:
    the form answered exactly as for a new address. The message holds the code: it is erased
    once sent, and never sent after the link expires.
    """
    request = issued.request
    site = current_app.config["SITE_NAME"]
    if request.purpose is SignInPurpose.CHANGE_EMAIL:
        subject = _l("Confirm your new email address for %(site)s", site=site)
    elif issued.is_new_member:
        subject = _l("Confirm your email to join %(site)s", site=site)
    else:
        subject = _l("Your sign-in code for %(site)s", site=site)
    mail.queue(
        request.email,
        "emails/members/sign_in",
        subject=subject,
        kind=SIGN_IN,
        locale=str(get_locale() or current_app.config["DEFAULT_LOCALE"]),
        context={
            "issued": issued,
            "purpose": request.purpose.value,
            "link": sign_in_link(issued.token),
            "minutes": current_app.config["SIGN_IN_TTL_SECONDS"] // 60,
            "duplicate_sign_up": via_sign_up and not issued.is_new_member,
        },
        member_id=request.member_id,
        key=_sign_in_key(request.id),
        is_sensitive=True,
        expires_at=request.expires_at,
    )


def sign_in_delivery(request_id: int) -> mail.Delivery | None:
    """Where the message of a sign-in request stands, for the page that waits for its code."""
    return mail.delivery_of(_sign_in_key(request_id))
