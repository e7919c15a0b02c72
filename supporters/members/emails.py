"""Messages to members: the sign-in link and code (templates/emails/members/), and what every
feature's messages to a member share: their language, their choice of optional mail, and the
one-click unsubscribe link. Messages go through the outbox: queued in the caller's
transaction, sent by a worker within seconds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from supporters import mail, web
from supporters.extensions import db
from supporters.members import preferences
from supporters.members.models import Member, SignInPurpose
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


def member_locale(member: Member) -> str:
    """The language a member reads us in: the one they last signed in with, if we still ship it."""
    config = current_app.config
    if member.locale and member.locale in config["LANGUAGES"]:
        return member.locale
    return str(config["DEFAULT_LOCALE"])


def send_to_member(
    member: Member,
    template: str,
    *,
    subject: Any,
    kind: str,
    context: Mapping[str, Any] | None = None,
    topic: str | None = None,
    key: str | None = None,
    checked: bool = False,
) -> mail.OutboxMessage | None:
    """Queue a message to a member, in their language; the caller commits.

    ``topic`` makes it optional mail: not queued when the member stopped that topic (unless
    ``checked`` says the caller has just asked, for many members at once), and carrying the
    one-click unsubscribe link. Without one it is transactional, always sent. ``subject`` is a
    lazy string, translated in the member's language. None when nothing was queued (stopped,
    or ``key`` queued already).
    """
    unsubscribe_url = preferences_url = None
    if topic is not None:
        if not checked and not preferences.wants(member, topic):
            return None
        unsubscribe_url = web.external_url(
            "members.unsubscribe",
            unsubscribe_token=preferences.unsubscribe_token(member.id, topic),
        )
        preferences_url = web.external_url("members.account") + "#email"
    return mail.queue(
        member.email,
        template,
        subject=subject,
        kind=kind,
        locale=member_locale(member),
        context={"member": member, **(context or {})},
        member_id=member.id,
        key=key,
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
    )


def members_wanting(topic: str, member_ids: Iterable[int]) -> Sequence[Member]:
    """The members among these who want optional mail of ``topic``, by id (for a message to
    many: pass ``checked=True`` to :func:`send_to_member` then)."""
    wanted = sorted(preferences.wanting(topic, member_ids))
    found: list[Member] = []
    for start in range(0, len(wanted), preferences.CHUNK):
        chunk = wanted[start : start + preferences.CHUNK]
        found.extend(db.session.scalars(sa.select(Member).where(Member.id.in_(chunk))))
    return sorted(found, key=lambda member: member.id)
